"""``allocate``: takes memory and holds it, to show what a job's resource limits do.

Declares small limits on purpose (``h_vmem`` 512M, ``h_rt`` 30 s): asking for
more memory than that, or holding it longer, ends in ProcessFailed with the
limit named in the status document (by the launcher for memory, by the
reconciler from Grid Engine's accounting for the run time).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from pywps import LiteralInput, LiteralOutput
from pywps.inout.literaltypes import AllowedValue

from ..process import GridEngineProcess

MAX_MEGABYTES = 1024 * 1024
MAX_SECONDS = 3600.0


class Allocate(GridEngineProcess):
    gridengine_resources = {"h_rt": "00:00:30", "h_vmem": "512M"}

    def __init__(self) -> None:
        super().__init__(
            self._handler,
            identifier="allocate",
            title="Allocate memory",
            abstract="Allocates the given number of megabytes, holds them for the given number of seconds, "
                     "then frees them. Its jobs may use 512 MB of memory and run for 30 s: beyond that, "
                     "Grid Engine's limits end the job and the status document says which limit.",
            keywords=["memory", "limits", "demo"],
            version="1.0",
            inputs=[
                LiteralInput("megabytes", "Megabytes to allocate", data_type="integer", default="16",
                             min_occurs=0, allowed_values=[AllowedValue(minval=1, maxval=MAX_MEGABYTES)]),
                LiteralInput("seconds", "Seconds to hold them", data_type="float", default="0", min_occurs=0,
                             allowed_values=[AllowedValue(minval=0, maxval=MAX_SECONDS)]),
            ],
            outputs=[LiteralOutput("output", "What was allocated", data_type="string")],
            store_supported=True,
            status_supported=True,
        )

    def expected_runtime(self, values: Mapping[str, list[Any]]) -> float:
        """It holds the memory for ``seconds``."""
        seconds = values.get("seconds") or [0.0]
        return float(seconds[0])

    @staticmethod
    def _handler(request: Any, response: Any) -> Any:
        megabytes = int(request.inputs["megabytes"][0].data) if "megabytes" in request.inputs else 16
        seconds = float(request.inputs["seconds"][0].data) if "seconds" in request.inputs else 0.0
        response.update_status(f"Allocating {megabytes} MB", 10)
        block = bytearray(megabytes * 1024 * 1024)
        block[:: 4096] = b"\x01" * len(block[:: 4096])  # touch every page: really resident
        response.update_status(f"Holding {megabytes} MB for {seconds:g} s", 50)
        time.sleep(seconds)
        del block
        response.outputs["output"].data = f"allocated {megabytes} MB for {seconds:g} s"
        return response
