"""``wordcount``: a complex (text) input in, a JSON document out."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from pywps import ComplexInput, ComplexOutput, Format, LiteralInput
from pywps.inout.literaltypes import AllowedValue

from ..process import GridEngineProcess

WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*", re.UNICODE)


class WordCount(GridEngineProcess):
    gridengine_resources = {"h_rt": "00:15:00", "h_vmem": "1G"}

    def __init__(self) -> None:
        super().__init__(
            self._handler,
            identifier="wordcount",
            title="Word Counter",
            abstract="Counts the words of a text document and returns the statistics as JSON.",
            keywords=["text", "json", "demo"],
            version="1.0",
            inputs=[
                ComplexInput("text", "Text document", abstract="Plain text, given inline or by reference.",
                             supported_formats=[Format("text/plain")], min_occurs=1, max_occurs=1),
                LiteralInput("top", "How many of the most frequent words to list", data_type="positiveInteger",
                             default="10", min_occurs=0, allowed_values=[AllowedValue(minval=1, maxval=1000)]),
            ],
            outputs=[
                ComplexOutput("output", "Word statistics", abstract="JSON: words, distinct, lines, top.",
                              supported_formats=[Format("application/json")], as_reference=False),
            ],
            store_supported=True,
            status_supported=True,
        )

    @staticmethod
    def _handler(request: Any, response: Any) -> Any:
        text = request.inputs["text"][0].data
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        top = int(request.inputs["top"][0].data) if "top" in request.inputs else 10
        response.update_status("Counting words", 50)
        response.outputs["output"].data = json.dumps(count_words(text, top))
        return response


def count_words(text: str, top: int = 10) -> dict[str, Any]:
    words = [w.lower() for w in WORD.findall(text)]
    counts = Counter(words)
    return {
        "words": len(words),
        "distinct": len(counts),
        "lines": len(text.splitlines()),
        "top": [[word, n] for word, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]],
    }
