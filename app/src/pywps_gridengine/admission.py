"""Admission control at the WPS front door: Execute refused with a 503 when busy or when something is down.

:class:`Admission` is a WSGI middleware around the PyWPS service. It does not
parse requests itself: PyWPS's ``Service.call`` writes the requests row of an
Execute (``log_request``) right after parsing it and before it creates the
job's work directory, and :mod:`.compat` routes that write through
:meth:`Request.log_execute`. So the decision is taken on the request PyWPS
has parsed (GET or POST, any spelling of ``request=Execute``, WPS 1.0 XML),
with no second XML parser at the door, and before any work a refusal would
have to undo. What is checked, in order, each bounded in time:

1. the shared tree (``outputpath``, ``workdir``) answers: :class:`SharedTreeProbe`,
   at most ``shared_tree_timeout`` (a hard NFS mount blocks in the kernel
   while its server is away; the probe does so in a thread of its own);
2. the caps on active asynchronous jobs, in total and per client (scheduler
   mode): a cheap unlocked count first, so a flood is refused before any
   work; the job row's insert checks again exactly (:meth:`.JobStore.create`);
3. the database answers: the row is written, at most ``db_connect_timeout``.

Any of them failing is a 503 ``ServerBusy`` ExceptionReport with a
Retry-After header (:class:`ServerBusy`). A submission to Grid Engine that
fails (qmaster down) is the same 503, its rows and files removed
(:mod:`.scheduler`). A refused Execute leaves no ``pywps_process_*``
directory, whatever refused it: PyWPS creates the directory before it checks
the inputs, and this middleware removes it when the answer is an error and
the job never started.

The client is the peer address, or the address the proxy reports in
X-Forwarded-For (or X-Real-IP) when the peer is a trusted proxy
(``trusted_proxies``): :func:`client_address`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pywps import exceptions as pywps_exceptions
from sqlalchemy.exc import SQLAlchemyError

from . import compat
from .config import Admission as AdmissionSettings
from .config import AppConfig, give_pywps_database
from .jobs import JobStore, OverCap
from .paths import contained, remove

LOGGER = logging.getLogger("PYWPS")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: WSGI environ key under which the client's address (as :func:`client_address` decides it) is passed on.
CLIENT_KEY = "pywps_gridengine.client"
#: The prefix PyWPS gives each request's work directory (``Service.prepare_process_for_execution``).
WORKDIR_PREFIX = "pywps_process_"


class ServerBusy(pywps_exceptions.ServerBusy):
    """The 503 answer of a refused Execute: exceptionCode ``ServerBusy``, with Retry-After.

    WPS 2.0 (OGC 14-065, Table 41) defines ``ServerBusy``, "the server is too
    busy to accept and queue the request at this time", with HTTP 503; the same
    code is used for WPS 1.0 requests, which have no dedicated code for it
    (PyWPS answers 1.0 and 2.0 with the same OWS 1.1 ExceptionReport).
    It is used for outages as well as for the caps, rather than
    ``NoApplicableCode``: OWS Common 2.0 (Table 28) ties NoApplicableCode to
    HTTP 500, a server fault with nothing to retry, while a database, shared
    tree or qmaster that is away is a condition the client should retry after
    Retry-After; the text says which one it is. The class name is the
    exceptionCode PyWPS writes, hence the same name as PyWPS's class.
    """

    def __init__(self, description: str, retry_after: int) -> None:
        super().__init__(description, code=503)
        self.retry_after = retry_after

    def get_response(self, environ: Any = None) -> Any:
        response = super().get_response(environ)
        response.headers["Retry-After"] = str(self.retry_after)
        response.headers["Cache-Control"] = "no-store"
        return response


def busy(settings: AdmissionSettings, reason: str) -> ServerBusy:
    """The refusal of a job because of a cap."""
    return ServerBusy(f"The service is too busy to accept this job: {reason}. Try again later.",
                      settings.retry_after)


def unavailable(settings: AdmissionSettings, what: str) -> ServerBusy:
    """The refusal of a job because ``what`` (a dependency, in words a client understands) does not answer."""
    return ServerBusy(f"The service cannot accept jobs at the moment: {what}. Try again later.",
                      settings.retry_after)


def current_settings() -> AdmissionSettings:
    """The admission settings of the request being served (the defaults outside the middleware)."""
    request = compat.CURRENT_REQUEST.get()
    return request.door.settings if request is not None else AdmissionSettings()


DATABASE_DOWN = "its job database does not answer"
SHARED_TREE_DOWN = "its shared storage does not answer"
SCHEDULER_DOWN = "the batch system does not accept jobs"


# -- the client ------------------------------------------------------------------------------------


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, settings: AdmissionSettings) -> bool:
    return any(address in network for network in settings.trusted_proxies)


def _key(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """How a client is counted: its IPv4 address, or its IPv6 /64 (one host's share of a network)."""
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def client_address(environ: dict[str, Any], settings: AdmissionSettings) -> str:
    """The client of a request: the peer, unless it is a trusted proxy, which then names the client.

    The proxy's X-Forwarded-For (nginx appends the address it saw to what the
    client sent) is read from the right, skipping trusted proxies; the first
    other address is the client, so a client that sends its own
    X-Forwarded-For cannot choose its identity. Without X-Forwarded-For the
    proxy's X-Real-IP is used. Written here rather than taken from werkzeug's
    ``ProxyFix``, which trusts a fixed number of hops rather than addresses.
    """
    peer = str(environ.get("REMOTE_ADDR") or "")
    peer_address = _address(peer) if peer else None
    if peer_address is None:
        if peer or not settings.trust_unix_socket:  # an unusable address, or a Unix socket peer not trusted
            return peer[:64] or "unix-socket"
    elif not _trusted(peer_address, settings):
        return _key(peer_address)
    forwarded = [hop for hop in str(environ.get("HTTP_X_FORWARDED_FOR", "")).split(",") if hop.strip()]
    if not forwarded and environ.get("HTTP_X_REAL_IP"):
        forwarded = [str(environ["HTTP_X_REAL_IP"])]
    client = peer_address
    for hop in reversed(forwarded):
        address = _address(hop)
        if address is None:  # not an address (a port, garbage): the last one read stands
            break
        client = address
        if not _trusted(address, settings):
            break
    return _key(client) if client is not None else "unix-socket"


def client_of(wps_request: Any) -> str | None:
    """The client :class:`Admission` recorded for the request PyWPS parsed (None outside the front door)."""
    http_request = getattr(wps_request, "http_request", None)
    environ = getattr(http_request, "environ", None) or {}
    return environ.get(CLIENT_KEY)


# -- the shared tree -------------------------------------------------------------------------------


class SharedTreeProbe:
    """Whether the shared directories answer, asked in a thread of its own, one probe at a time.

    The probe creates (or opens) and writes a small file in each directory:
    on NFS that is a round trip to the server every time, where ``stat``
    may be answered from the client's attribute cache; it also finds a tree
    that is read-only or full. On a hard mount whose server is away the
    probe blocks in the kernel and cannot be interrupted, so it runs in a
    daemon thread and callers wait for it at most ``timeout`` seconds. While a
    probe is blocked no other starts: every caller is answered at once that the
    tree does not answer, so blocked threads never pile up (one per worker
    process at most). A finished probe's answer is kept ``ttl`` seconds.
    """

    FILENAME = ".pywps-gridengine-probe"

    def __init__(self, directories: Iterable[str], timeout: float, ttl: float = 5.0) -> None:
        self.directories = [d for d in dict.fromkeys(directories) if d]
        self.timeout = timeout
        self.ttl = ttl
        self._lock = threading.Lock()
        self._running: threading.Event | None = None  # set when the running probe finishes
        self._started = 0.0
        self._answer: str | None = None
        self._answered_at = float("-inf")

    def _probe(self, done: threading.Event) -> None:
        answer: str | None = None
        try:
            for directory in self.directories:
                fd = os.open(os.path.join(directory, self.FILENAME), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
                try:
                    os.write(fd, f"{time.time():.0f}\n".encode())
                finally:
                    os.close(fd)
        except OSError as e:
            answer = f"{e.filename or ''}: {e.strerror}"
            LOGGER.warning("shared tree probe failed: %s", answer)
        with self._lock:
            self._answer, self._answered_at, self._running = answer, time.monotonic(), None
        done.set()

    def check(self) -> str | None:
        """None when every directory answered; else why not. Returns within ``timeout`` seconds."""
        with self._lock:
            now = time.monotonic()
            if self._running is None:
                if now - self._answered_at < self.ttl:
                    return self._answer
                self._running, self._started = threading.Event(), now
                threading.Thread(target=self._probe, args=(self._running,), name="shared-tree-probe",
                                 daemon=True).start()
            done, started = self._running, self._started
        if done.wait(max(0.0, started + self.timeout - time.monotonic())):
            with self._lock:
                return self._answer
        return f"{', '.join(self.directories)} did not answer within {self.timeout:g} s"


# -- the middleware --------------------------------------------------------------------------------


@dataclass
class Request:
    """What the front door knows of the request being served (:data:`.compat.CURRENT_REQUEST`)."""

    door: Admission
    client: str
    execute: bool = False
    started: bool = False
    workdirs: list[str] = field(default_factory=list)

    def log_execute(self, uuid: Any, wps_request: Any, write: Callable[[Any, Any], None]) -> None:
        """Admit an Execute PyWPS has parsed, then write its requests row (``write``, PyWPS's own)."""
        self.execute = True
        try:
            self.door.admit(self, wps_request)
            try:
                write(uuid, wps_request)
            except SQLAlchemyError as e:
                LOGGER.warning("Execute refused, the database does not answer: %s", str(e).splitlines()[0])
                raise unavailable(self.door.settings, DATABASE_DOWN) from None
        except ServerBusy:
            # No row was written: PyWPS's "request rejected" update of it would only try the database again.
            compat.request_row_gone(uuid)
            raise

    def workdir_created(self, path: str) -> None:
        self.workdirs.append(path)

    def execution_started(self) -> None:
        self.started = True

    def remove_workdirs(self) -> None:
        """Remove the work directories of a refused Execute, only PyWPS's own, directly under ``workdir``."""
        root = Path(self.door.config.workdir).resolve()
        for path in self.workdirs:
            child = contained(root, path)
            if child is not None and child.name.startswith(WORKDIR_PREFIX):
                try:
                    remove(child)
                except OSError as e:
                    LOGGER.warning("could not remove %s of a refused Execute: %s", child, e)


class Admission:
    """WSGI middleware: the front door's admission of Execute requests (see the module's docstring)."""

    def __init__(self, app: WSGIApp, config: AppConfig, probe: SharedTreeProbe | None = None) -> None:
        self.app = app
        self.config = config
        self.settings = config.admission
        self.probe = probe or SharedTreeProbe([config.outputpath, config.workdir], self.settings.shared_tree_timeout)
        compat.install_request_logging()
        give_pywps_database(config.database)  # the service reloaded PyWPS's configuration: the bounded URL again

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(self, client_address(environ, self.settings))
        environ[CLIENT_KEY] = request.client
        statuses: list[int] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            statuses.append(int(status.split(" ", 1)[0]))
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        token = compat.CURRENT_REQUEST.set(request)
        try:
            result = self.app(environ, capture)
        finally:
            compat.CURRENT_REQUEST.reset(token)
        if request.execute and not request.started and statuses and statuses[-1] >= 400:
            request.remove_workdirs()
        return result

    def store(self) -> JobStore:
        return JobStore.for_config(self.config)

    def admit(self, request: Request, wps_request: Any) -> None:
        """Refuse (raise :class:`ServerBusy`) an Execute the service cannot take now."""
        from . import metrics

        identifier = getattr(wps_request, "identifier", None)
        problem = self.probe.check()
        if problem is not None:
            LOGGER.warning("Execute refused, the shared tree does not answer: %s", problem)
            metrics.submission_failed(identifier, metrics.SHARED_TREE_DOWN)
            raise unavailable(self.settings, SHARED_TREE_DOWN)
        settings = self.settings
        asynchronous = wps_request.store_execute == "true" and wps_request.status == "true"
        if not (asynchronous and self.config.scheduler and (settings.max_active_jobs or
                                                             settings.max_active_jobs_per_client)):
            return
        try:
            total, mine = self.store().active_counts(request.client)
        except SQLAlchemyError as e:
            LOGGER.warning("Execute refused, the database does not answer: %s", str(e).splitlines()[0])
            metrics.submission_failed(identifier, metrics.DATABASE_DOWN)
            raise unavailable(settings, DATABASE_DOWN) from None
        if (settings.max_active_jobs_per_client and mine >= settings.max_active_jobs_per_client) or (
                settings.max_active_jobs and total >= settings.max_active_jobs):
            over = OverCap(total, mine, settings.max_active_jobs, settings.max_active_jobs_per_client)
            LOGGER.warning("Execute of client %s refused: %s", request.client, over)
            metrics.submission_failed(identifier, metrics.OVER_CAP)
            raise busy(settings, str(over))


def wrap(app: WSGIApp, config: AppConfig) -> WSGIApp:
    """``app`` behind the front door's admission control (the one line ``wsgi.make_app`` needs)."""
    return Admission(app, config)
