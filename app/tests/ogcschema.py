"""Validate JSON documents against the OGC API - Processes - Part 1: Core (OGC 18-062r2) response schemas.

The schemas in ``schemas/ogcapi-processes/`` were written for this project from the standard's requirement
classes and the response shapes its text documents (each names its clause and requirements in ``description``);
none is a copy of OGC's schema files. They are loaded into one ``referencing.Registry`` so that a reference such
as ``"$ref": "link.json"`` resolves against the referring schema's ``$id``.

``date-time`` and ``uri`` are checked here (RFC 3339 / a scheme) because jsonschema only checks them when
optional packages are installed.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).parent / "schemas" / "ogcapi-processes"
SCHEMAS = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(SCHEMA_DIR.glob("*.json"))}
REGISTRY = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in SCHEMAS.values())

FORMATS = FormatChecker()
_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.fullmatch(value):
        return False
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))  # impossible dates raise ValueError
    return True


@FORMATS.checks("uri")
def _uri(value: object) -> bool:
    return not isinstance(value, str) or re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*:\S+", value) is not None


def validator(name: str) -> Draft202012Validator:
    """The validator for ``name`` (a file name in the schema folder, with or without ``.json``)."""
    return Draft202012Validator(SCHEMAS[name.removesuffix(".json")], registry=REGISTRY, format_checker=FORMATS)


def validate(name: str, instance: object) -> None:
    """Raise ``jsonschema.ValidationError`` (the best match) when ``instance`` does not fit schema ``name``."""
    validator(name).validate(instance)


def errors(name: str, instance: object) -> list[str]:
    """Every problem of ``instance`` against schema ``name`` as "path: message", an empty list when it fits."""
    found = sorted(validator(name).iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in found]
