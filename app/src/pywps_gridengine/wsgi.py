"""The WSGI application: a PyWPS ``Service`` over the app's processes.

``gunicorn pywps_gridengine.wsgi:application`` with ``PYWPS_CFG`` set in the
environment. Requests whose path ends in ``/health`` get :func:`health`
instead of PyWPS (nginx can proxy ``/health`` there); everything else goes to
PyWPS, behind the front door (:mod:`.frontdoor`): every answer, ``/health``
included, passes it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from pywps import Service

from . import admission, frontdoor
from .config import AppConfig, load
from .processes import get_processes

LOGGER = logging.getLogger("PYWPS")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def create_service(config: AppConfig) -> Service:
    """A PyWPS Service over the app's processes, each given ``config``.

    In scheduler mode :func:`.config.load` has validated the Grid Engine
    settings; each process's own resource declaration is checked against them
    here, so a bad declaration stops the app at start instead of failing jobs.
    """
    from . import metrics

    processes = get_processes()
    for process in processes:
        process.app_config = config
    metrics.know_processes(process.identifier for process in processes)
    service = frontdoor.FrontDoorService(processes, [config.cfgfile] if config.cfgfile else None,
                                         sync_max_runtime=config.sync_max_runtime)
    if config.gridengine is not None:
        for process in service.processes.values():
            config.gridengine.resources_for(process.identifier, getattr(process, "gridengine_resources", None))
    return service


def health(config: AppConfig) -> tuple[int, dict[str, Any]]:
    """Check what a request needs: writable output/work dirs, database, and in
    scheduler mode the DRMAA library. Returns (HTTP status, JSON body).

    The configuration was validated when the app started (it would not run otherwise).
    """
    checks: dict[str, str] = {"config": "ok"}
    if config.scheduler:
        # Submission needs the DRMAA library; it is not loaded here (that happens per job).
        lib = os.environ.get("DRMAA_LIBRARY_PATH", "")
        checks["drmaa"] = "ok" if lib and os.path.isfile(lib) else f"DRMAA_LIBRARY_PATH is not a file: {lib or 'unset'}"
    for key, path in (("outputpath", config.outputpath), ("workdir", config.workdir)):
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


def make_app(service: Service, config: AppConfig) -> WSGIApp:
    """Wrap the PyWPS service with the ``/health`` route, the other middlewares, then the front door.

    Each middleware is one line below, innermost first; the front door is the
    outermost, so every answer gets its headers and nothing escapes it.
    """

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").rstrip("/").endswith("/health"):
            code, body = health(config)
            payload = json.dumps(body).encode()
            reason = "OK" if code == 200 else "Service Unavailable"
            start_response(f"{code} {reason}", [("Content-Type", "application/json"),
                                                ("Content-Length", str(len(payload))),
                                                ("Cache-Control", "no-store")])
            return [payload]
        return service(environ, start_response)

    wrapped: WSGIApp = app
    # -- middlewares, one line each, innermost first --
    wrapped = admission.wrap(wrapped, config)  # admission control: Execute refused with a 503 when busy or down
    wrapped = jobs_and_ogcapi(wrapped, service, config)  # job control: WPS 2.0 and vendor operations, OGC API
    # -- end of middlewares --
    return frontdoor.wrap(wrapped, config, OGCAPI_PREFIX)


#: Where the OGC API – Processes is served (nginx passes this prefix to the app).
OGCAPI_PREFIX = "/ogcapi"


def jobs_and_ogcapi(wps: WSGIApp, service: Service, config: AppConfig) -> WSGIApp:
    """The job operations of WPS (:mod:`.wpsjobs`) around ``wps``, and the OGC API (:mod:`.ogcapi`) beside it.

    The user nginx reports (:mod:`.jobcontrol`) is read here once, for both;
    the OGC API runs its executions through ``wps``, the same stack as a WPS Execute.
    """
    from . import jobcontrol, ogcapi, wpsjobs

    control = jobcontrol.for_config(config)
    wps_jobs = wpsjobs.JobOperations(wps, control, config)
    api = ogcapi.OgcApi(wps, service.processes, control, config, OGCAPI_PREFIX)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        under_api = api.handles(environ.get("PATH_INFO", ""))
        try:
            environ[jobcontrol.USER_KEY] = jobcontrol.user_from(environ, config.jobs)
        except jobcontrol.NotAllowed as e:
            refusal = ogcapi.Problem(400, "Bad Request", e.text) if under_api else \
                frontdoor.Refusal(400, "NoApplicableCode", e.text)
            return refusal(environ, start_response)
        return (api if under_api else wps_jobs)(environ, start_response)

    return app


def build(cfgfile: str | None = None) -> WSGIApp:
    """The WSGI application over ``cfgfile`` (default ``$PYWPS_CFG``): load once, wire, wrap."""
    config = load(cfgfile)
    return make_app(create_service(config), config)


_application: WSGIApp | None = None


def __getattr__(name: str) -> Any:
    # ``application`` is built on first access (gunicorn's import), not when the
    # module is imported by tests or tools.
    global _application
    if name == "application":
        if _application is None:
            _application = build()
        return _application
    raise AttributeError(name)
