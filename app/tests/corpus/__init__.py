"""The project's corpus of hostile and malformed requests, as a table.

Each module of this package defines ``CASES``, a list of :class:`Case`; :func:`cases`
gathers them all. The same table runs twice: against the WSGI app in pytest
(``tests/test_corpus.py``, cases whose ``where`` is ``app`` or ``both``) and
against the real cluster through nginx in the default molecule scenario
(``where`` is ``cluster`` or ``both``). Every case states the HTTP status and,
for an OGC ExceptionReport, the exceptionCode (and locator where OWS Common
defines one) it must get.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field

WHERE = ("app", "cluster", "both")


@dataclass(frozen=True)
class Case:
    """One request and what it must get back."""

    name: str  # unique across the corpus; used as the test id
    kind: str  # what it attacks: kvp, xml, json, encoding, size, method, output, reference, wps2, traversal, busy...
    status: int  # expected HTTP status
    code: str | None = None  # expected exceptionCode (OGC API: the problem's type); None: not an exception answer
    locator: str | None = None  # expected ows:Exception/@locator, where one applies
    method: str = "GET"
    path: str = "/wps"
    query: str = ""  # raw query string, encoded as the client sends it (no leading "?")
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    where: str = "both"  # "app": WSGI app only; "cluster": only behind nginx; "both"
    note: str = ""  # why the case exists, when the name does not say it

    def __post_init__(self) -> None:
        if self.where not in WHERE:
            raise ValueError(f"{self.name}: where must be one of {WHERE}")


OWS_NAMESPACES = ("http://www.opengis.net/ows/1.1", "http://www.opengis.net/ows/2.0")


def exception_of(body: bytes) -> tuple[str | None, str | None, str]:
    """(code, locator, text) of an error answer, or (None, None, "") when it is neither kind.

    An OWS ExceptionReport (OWS 1.1 for WPS 1.0, OWS 2.0 for WPS 2.0): its
    exceptionCode and locator. An RFC 7807 problem document (the OGC API):
    its ``type`` as the code, and its ``detail``. Parsed without entities or
    network (the standard library's parsers: both the app's tests and the
    cluster's use it).
    """
    import json
    import xml.etree.ElementTree as ET

    text = body.lstrip()
    if text.startswith(b"{"):
        try:
            problem = json.loads(text)
        except ValueError:
            return None, None, ""
        return problem.get("type"), None, str(problem.get("detail") or problem.get("title") or "")
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None, None, ""
    for namespace in OWS_NAMESPACES:
        if root.tag == f"{{{namespace}}}ExceptionReport":
            exception = root.find(f"{{{namespace}}}Exception")
            if exception is None:
                return None, None, ""
            return (exception.get("exceptionCode"), exception.get("locator"),
                    "".join(exception.itertext()).strip())
    return None, None, ""


def cases() -> list[Case]:
    """Every case of every module of this package, names checked unique."""
    found: list[Case] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.extend(getattr(module, "CASES", []))
    names = [c.name for c in found]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"duplicate corpus case names: {sorted(duplicates)}")
    return found
