"""``fail``: fails on purpose, with a clear message in the status document."""

from __future__ import annotations

from typing import Any

from pywps import LiteralInput, LiteralOutput
from pywps.app.exceptions import ProcessError

from ..process import GridEngineProcess

DEFAULT_MESSAGE = "This process fails on purpose."


class Fail(GridEngineProcess):
    gridengine_resources = {"h_rt": "00:05:00", "h_vmem": "256M"}

    def __init__(self) -> None:
        super().__init__(
            self._handler,
            identifier="fail",
            title="Fail on purpose",
            abstract="Always fails with the given message, to show how a failed job is reported.",
            keywords=["error", "demo"],
            version="1.0",
            inputs=[LiteralInput("message", "Error message", data_type="string", default=DEFAULT_MESSAGE,
                                 min_occurs=0)],
            outputs=[LiteralOutput("output", "Never produced", data_type="string")],
            store_supported=True,
            status_supported=True,
        )

    @staticmethod
    def _handler(request: Any, response: Any) -> Any:
        message = request.inputs["message"][0].data if "message" in request.inputs else DEFAULT_MESSAGE
        response.update_status("About to fail on purpose", 50)
        raise ProcessError(message)
