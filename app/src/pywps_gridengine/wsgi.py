"""The WSGI application: a PyWPS ``Service`` over the app's processes.

``gunicorn pywps_gridengine.wsgi:application`` with ``PYWPS_CFG`` set in the
environment. Requests whose path ends in ``/health`` get :func:`health`
instead of PyWPS (nginx can proxy ``/health`` there); everything else goes to
PyWPS.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from pywps import Service
from pywps import configuration as pywps_config

from .config import ConfigError, load_settings, processing_mode
from .processes import get_processes

LOGGER = logging.getLogger("PYWPS")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def create_service(cfgfile: str | None = None) -> Service:
    """A PyWPS Service configured from ``cfgfile`` or ``PYWPS_CFG``.

    In scheduler mode the Grid Engine settings are validated here, so a bad
    ``[gridengine]`` section stops the app at start instead of failing jobs.
    """
    cfgfile = cfgfile or os.environ.get("PYWPS_CFG")
    if cfgfile:
        os.environ["PYWPS_CFG"] = cfgfile  # PyWPS (and the job environment) read it from here
    service = Service(processes=get_processes(), cfgfiles=[cfgfile] if cfgfile else None)
    if processing_mode() == "scheduler":
        settings = load_settings()
        for process in service.processes.values():
            settings.resources_for(process.identifier, getattr(process, "gridengine_resources", None))
    return service


def health() -> tuple[int, dict[str, Any]]:
    """Check what a request needs: configuration, writable output/work dirs, database,
    and in scheduler mode the DRMAA library. Returns (HTTP status, JSON body)."""
    checks: dict[str, str] = {}
    scheduler = processing_mode() == "scheduler"
    try:
        if scheduler:
            load_settings()
        checks["config"] = "ok"
    except ConfigError as e:
        checks["config"] = str(e)
    if scheduler:
        # Submission needs the DRMAA library; it is not loaded here (that happens per job).
        lib = os.environ.get("DRMAA_LIBRARY_PATH", "")
        checks["drmaa"] = "ok" if lib and os.path.isfile(lib) else f"DRMAA_LIBRARY_PATH is not a file: {lib or 'unset'}"
    for key in ("outputpath", "workdir"):
        path = str(pywps_config.get_config_value("server", key))
        checks[key] = "ok" if os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK) else f"not writable: {path}"
    try:
        from pywps import dblog
        from sqlalchemy import text

        session = dblog.get_session()
        try:
            session.execute(text("SELECT 1"))
        finally:
            session.close()
        checks["database"] = "ok"
    except Exception as e:  # any database error means unhealthy
        checks["database"] = f"error: {type(e).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return (200 if healthy else 503), {"status": "ok" if healthy else "error", "checks": checks}


def make_app(service: Service) -> WSGIApp:
    """Wrap the PyWPS service with the ``/health`` route."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").rstrip("/").endswith("/health"):
            code, body = health()
            payload = json.dumps(body).encode()
            reason = "OK" if code == 200 else "Service Unavailable"
            start_response(f"{code} {reason}", [("Content-Type", "application/json"),
                                                ("Content-Length", str(len(payload))),
                                                ("Cache-Control", "no-store")])
            return [payload]
        return service(environ, start_response)

    return app


_application: WSGIApp | None = None


def __getattr__(name: str) -> Any:
    # ``application`` is built on first access (gunicorn's import), not when the
    # module is imported by tests or tools.
    global _application
    if name == "application":
        if _application is None:
            _application = make_app(create_service())
        return _application
    raise AttributeError(name)
