"""The processes the service offers."""

from __future__ import annotations

from pywps import Process

from .allocate import Allocate
from .fail import Fail
from .hello import Hello
from .literals import Literals
from .sleep import Sleep
from .textfile import TextFile
from .wordcount import WordCount

PROCESS_CLASSES: tuple[type[Process], ...] = (Hello, Sleep, WordCount, Literals, TextFile, Fail, Allocate)


def get_processes() -> list[Process]:
    """One fresh instance of every process, in GetCapabilities order."""
    return [cls() for cls in PROCESS_CLASSES]


def process_class(identifier: str) -> type[Process]:
    for cls in PROCESS_CLASSES:
        if cls().identifier == identifier:
            return cls
    raise KeyError(identifier)


__all__ = ["PROCESS_CLASSES", "get_processes", "process_class"]
