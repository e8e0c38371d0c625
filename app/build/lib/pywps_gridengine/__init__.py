"""PyWPS processes and Grid Engine job delegation for pywps-gridengine."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pywps-gridengine")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
