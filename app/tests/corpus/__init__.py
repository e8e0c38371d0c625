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
    code: str | None = None  # expected ows:Exception/@exceptionCode; None when the answer is not an ExceptionReport
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
