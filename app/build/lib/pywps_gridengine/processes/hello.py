"""``hello``: the original demo's synchronous greeting (same identifier, input and output)."""

from __future__ import annotations

from typing import Any

from pywps import UOM, LiteralInput, LiteralOutput

from ..process import GridEngineProcess


class Hello(GridEngineProcess):
    gridengine_resources = {"h_rt": "00:05:00", "h_vmem": "512M"}

    def __init__(self) -> None:
        super().__init__(
            self._handler,
            identifier="hello",
            title="Say Hello",
            abstract="Just says a friendly Hello. Returns a literal string output with Hello plus the given name.",
            keywords=["hello", "demo"],
            version="1.5",
            inputs=[
                LiteralInput("name", "Your name", abstract="Please enter your name.",
                             keywords=["name", "firstname"], data_type="string"),
            ],
            outputs=[
                LiteralOutput("output", "Output response", abstract="A friendly Hello from us.",
                              keywords=["output", "result", "response"], data_type="string"),
            ],
            store_supported=True,
            status_supported=True,
        )

    @staticmethod
    def _handler(request: Any, response: Any) -> Any:
        response.outputs["output"].data = greeting(request.inputs["name"][0].data)
        response.outputs["output"].uom = UOM("unity")
        return response


def greeting(name: str) -> str:
    return f"Hello {name}"
