"""``literals``: one input of every PyWPS literal type, each with a default and allowed values."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import ParseResult

from pywps import ComplexOutput, Format, LiteralInput
from pywps.inout.literaltypes import AllowedValue

from ..process import GridEngineProcess

# identifier, data type, default, allowed values (None = any value)
FIELDS: list[tuple[str, str, str, list[Any] | None]] = [
    ("string", "string", "banana", ["apple", "banana", "cherry"]),
    ("integer", "integer", "42", [AllowedValue(minval=-100, maxval=100)]),
    ("float", "float", "0.5", [AllowedValue(minval=-1.0, maxval=1.0)]),
    ("boolean", "boolean", "true", None),
    ("positive_integer", "positiveInteger", "3", [1, 2, 3, 5, 8]),
    ("non_negative_integer", "nonNegativeInteger", "0", [AllowedValue(minval=0, maxval=10)]),
    ("angle", "angle", "90", [AllowedValue(minval=0, maxval=360)]),
    ("scale", "scale", "1.0", [AllowedValue(minval=0.0, maxval=10.0)]),
    ("date", "date", "2024-02-29", None),
    ("time", "time", "12:30:00", None),
    ("datetime", "dateTime", "2024-02-29T12:30:00Z", None),
    ("uri", "anyURI", "https://example.org/data", None),
]


class Literals(GridEngineProcess):
    gridengine_resources = {"h_rt": "00:05:00", "h_vmem": "512M"}

    def __init__(self) -> None:
        inputs = [
            LiteralInput(ident, f"A {dtype} value", data_type=dtype, default=default, min_occurs=0, max_occurs=1,
                         **({"allowed_values": allowed} if allowed else {}))
            for ident, dtype, default, allowed in FIELDS
        ]
        super().__init__(
            self._handler,
            identifier="literals",
            title="Literal types",
            abstract="Takes one input of every literal type (with defaults and allowed values) "
                     "and returns the parsed values and their types as JSON.",
            keywords=["literal", "types", "demo"],
            version="1.0",
            inputs=inputs,
            outputs=[ComplexOutput("output", "Parsed values", supported_formats=[Format("application/json")])],
            store_supported=True,
            status_supported=True,
        )

    @staticmethod
    def _handler(request: Any, response: Any) -> Any:
        values = {ident: request.inputs[ident][0].data for ident, *_ in FIELDS if ident in request.inputs}
        response.outputs["output"].data = json.dumps(describe_values(values))
        return response


def describe_values(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """JSON-ready ``{name: {"value": ..., "type": python type name}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        if isinstance(value, dt.date | dt.time):
            shown: Any = value.isoformat()
        elif isinstance(value, ParseResult):  # anyURI is parsed by PyWPS
            shown = value.geturl()
        else:
            shown = value
        out[name] = {"value": shown, "type": type(value).__name__}
    return out
