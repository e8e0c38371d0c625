"""``textfile``: writes a file that is returned by reference (plain text or CSV, as the client asks)."""

from __future__ import annotations

import csv
import io
import os
from typing import Any

from pywps import ComplexOutput, Format, LiteralInput
from pywps.inout.literaltypes import AllowedValue

from ..process import GridEngineProcess

TEXT = Format("text/plain", extension=".txt")
CSV = Format("text/csv", extension=".csv")


class TextFile(GridEngineProcess):
    gridengine_resources = {"h_rt": "00:10:00", "h_vmem": "512M"}

    def __init__(self) -> None:
        super().__init__(
            self._handler,
            identifier="textfile",
            title="Text file",
            abstract="Writes a table of squares with the given number of lines, returned by reference. "
                     "Ask for mimeType text/csv to get CSV instead of plain text.",
            keywords=["file", "reference", "demo"],
            version="1.0",
            inputs=[
                LiteralInput("lines", "Number of lines", data_type="positiveInteger", default="10", min_occurs=0,
                             allowed_values=[AllowedValue(minval=1, maxval=100000)]),
            ],
            outputs=[
                ComplexOutput("output", "The file", supported_formats=[TEXT, CSV], as_reference=True),
            ],
            store_supported=True,
            status_supported=True,
        )

    def _handler(self, request: Any, response: Any) -> Any:
        lines = int(request.inputs["lines"][0].data) if "lines" in request.inputs else 10
        output = response.outputs["output"]
        as_csv = output.data_format is not None and output.data_format.mime_type == CSV.mime_type
        path = os.path.join(self.workdir, "squares" + (CSV.extension if as_csv else TEXT.extension))
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(render_table(lines, as_csv))
        output.file = path
        return response


def render_table(lines: int, as_csv: bool) -> str:
    if as_csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["n", "square"])
        writer.writerows([n, n * n] for n in range(1, lines + 1))
        return buffer.getvalue()
    return "".join(f"{n} squared is {n * n}\n" for n in range(1, lines + 1))
