"""``sleep``: the original demo's long-running job (same identifier and input).

As in the demo, ``delay`` is the time in seconds between each of five progress
updates, so a run takes about five times ``delay``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from pywps import LiteralInput, LiteralOutput
from pywps.app.exceptions import ProcessError
from pywps.inout.literaltypes import AllowedValue

from ..process import GridEngineProcess

STEPS = 5
MAX_DELAY = 3600.0


class Sleep(GridEngineProcess):
    gridengine_resources = {"h_rt": "08:00:00", "h_vmem": "512M"}

    def __init__(self) -> None:
        super().__init__(
            self._handler,
            identifier="sleep",
            title="Sleep Process",
            abstract="Testing a long running process, in the sleep. Sleeps for the given delay between "
                     "each of five progress updates.",
            keywords=["sleep", "demo"],
            version="1.0",
            inputs=[
                LiteralInput("delay", "Delay between every update", abstract="Seconds, from 0 to 3600.",
                             data_type="float", default="2", min_occurs=0,
                             allowed_values=[AllowedValue(minval=0, maxval=MAX_DELAY)]),
            ],
            outputs=[LiteralOutput("sleep_output", "Sleep Output", data_type="string")],
            store_supported=True,
            status_supported=True,
        )

    def expected_runtime(self, values: Mapping[str, list[Any]]) -> float:
        """Five steps of ``delay`` seconds: a synchronous ``delay=3600`` would hold a web worker for five hours."""
        delays = values.get("delay") or [2.0]
        return STEPS * float(delays[0])

    @staticmethod
    def _handler(request: Any, response: Any) -> Any:
        delay = float(request.inputs["delay"][0].data) if "delay" in request.inputs else 2.0
        run_sleep(delay, response.update_status)
        response.outputs["sleep_output"].data = "done sleeping"
        return response


def run_sleep(delay: float, report: Callable[[str, int], None], sleep: Callable[[float], None] = time.sleep) -> None:
    """Sleep ``STEPS`` times ``delay`` seconds, reporting progress before each step."""
    if not 0 <= delay <= MAX_DELAY:
        raise ProcessError(f"delay must be between 0 and {MAX_DELAY:g} seconds, got {delay:g}")
    for step in range(STEPS):
        report(f"Sleeping, step {step + 1} of {STEPS}", step * 100 // STEPS)
        sleep(delay)
    report("Done sleeping", 99)
