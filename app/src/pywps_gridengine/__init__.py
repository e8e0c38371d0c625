"""PyWPS processes and Grid Engine job delegation for pywps-gridengine."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # The version is looked up when asked for, not on import: finding the
    # installed distribution scans the virtualenv's metadata (about 45 ms), which
    # every job's launcher would pay on its start-up.
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pywps-gridengine")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0"
