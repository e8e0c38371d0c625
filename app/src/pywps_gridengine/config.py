"""Grid Engine settings read from the PyWPS configuration.

Everything the app adds lives beside PyWPS's own sections in the same
``pywps.cfg`` (the file named by ``PYWPS_CFG``):

``[gridengine]``
    Site-wide submission settings and the resource defaults for every process
    (``queue``, ``h_rt``, ``h_vmem``, ``slots``, ``parallel_environment``,
    ``extra``), plus the job plumbing keys documented on :class:`Settings`.

``[gridengine:<process identifier>]``
    Per-process resource overrides set by the operator, e.g.
    ``[gridengine:sleep]`` with ``h_rt = 00:30:00``.

Resources are merged in this order, later wins: ``[gridengine]`` site
defaults, then what the process declares (:attr:`GridEngineProcess.gridengine_resources`),
then ``[gridengine:<identifier>]``. PyWPS's own
``[processing] drmaa_native_specification`` is kept and put in front of the
generated options, so an existing configuration keeps working.

:func:`load` is the one loader: every entry point (the WSGI app, the job
launcher, the reconciler, the cleanup) calls it once and passes the
:class:`AppConfig` it returns down to what needs it. It is also the one place
that sets ``PYWPS_CFG`` in the environment, which PyWPS needs: its database
module reads the table prefix from the configuration when it is imported, and
the configuration named there is loaded on first use. So nothing of PyWPS is
imported at the top of this module.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .fetch import FetchPolicy, configure  # [fetch]: inputs by reference
from .jobcontrol import Access  # [jobs]: job control for clients

SECTION = "gridengine"
RESOURCE_KEYS = ("queue", "h_rt", "h_vmem", "slots", "parallel_environment", "extra")

_H_RT = re.compile(r"^(\d+|\d+:\d{1,2}:\d{1,2})$")
_MEMORY = re.compile(r"^\d+(\.\d+)?[KkMmGgTt]?$")
_NAME = re.compile(r"^[A-Za-z0-9_.\-@*,]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConfigError(ValueError):
    """A Grid Engine setting in pywps.cfg is missing or malformed."""


@dataclass(frozen=True)
class Resources:
    """What one job asks Grid Engine for. ``None`` means "not requested"."""

    queue: str | None = None
    h_rt: str | None = None
    h_vmem: str | None = None
    slots: int | None = None
    parallel_environment: str | None = None
    extra: str | None = None

    def merged(self, other: Resources) -> Resources:
        """Return a copy where every value set in ``other`` wins."""
        changes = {f.name: getattr(other, f.name) for f in fields(other) if getattr(other, f.name) is not None}
        return replace(self, **changes)

    def native_specification(self) -> str:
        """Render the qsub options for DRMAA's ``nativeSpecification``."""
        parts: list[str] = []
        if self.queue:
            parts += ["-q", self.queue]
        limits = [f"{key}={value}" for key, value in (("h_rt", self.h_rt), ("h_vmem", self.h_vmem)) if value]
        if limits:
            parts += ["-l", ",".join(limits)]
        if self.slots and self.slots > 1:
            parts += ["-pe", str(self.parallel_environment), str(self.slots)]
        spec = shlex.join(parts)
        if self.extra:
            spec = f"{spec} {self.extra}".strip()
        return spec


def parse_resources(values: Mapping[str, object], where: str) -> Resources:
    """Validate raw resource values (from pywps.cfg or a process) into :class:`Resources`.

    ``where`` names the source in error messages, e.g. ``[gridengine:sleep]``.
    """
    unknown = sorted(set(values) - set(RESOURCE_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(RESOURCE_KEYS)}")
    out: dict[str, object] = {}
    for key, raw in values.items():
        if raw is None or str(raw).strip() == "":
            continue
        value = str(raw).strip()
        if key == "h_rt" and not _H_RT.match(value):
            raise ConfigError(f"{where}: h_rt = {value!r} is not a run time; use seconds or HH:MM:SS (e.g. 01:30:00)")
        if key == "h_vmem" and not _MEMORY.match(value):
            raise ConfigError(f"{where}: h_vmem = {value!r} is not a memory size; use e.g. 512M or 2G")
        if key in ("queue", "parallel_environment") and not _NAME.match(value):
            raise ConfigError(f"{where}: {key} = {value!r} is not a Grid Engine name")
        if key == "slots":
            try:
                number = int(value)
            except ValueError:
                raise ConfigError(f"{where}: slots = {value!r} is not a whole number") from None
            if number < 1:
                raise ConfigError(f"{where}: slots = {value!r} must be at least 1")
            out[key] = number
            continue
        out[key] = value
    return Resources(**out)  # type: ignore[arg-type]


def _check_complete(resources: Resources, where: str) -> Resources:
    if resources.slots and resources.slots > 1 and not resources.parallel_environment:
        raise ConfigError(
            f"{where}: slots = {resources.slots} needs a parallel_environment (e.g. smp) to request more than one slot"
        )
    return resources


def _float(raw: Mapping[str, str], key: str, default: float, section: str = SECTION,
           maximum: float | None = None) -> float:
    """A positive number of seconds (at most MAXIMUM, when given) from SECTION's KEY, or DEFAULT."""
    value = raw.get(key, "")
    if str(value).strip() == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"[{section}] {key} = {value!r} is not a number of seconds") from None
    if maximum is not None and not 0 < number <= maximum:
        raise ConfigError(f"[{section}] {key} = {value!r} must be more than 0 and at most {maximum:g} (seconds)")
    if number <= 0:
        raise ConfigError(f"[{section}] {key} = {value!r} must be positive")
    return number


def _env_assignments(value: str, key: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in shlex.split(value):
        name, sep, val = item.partition("=")
        if not sep or not _ENV_NAME.match(name):
            raise ConfigError(f"[{SECTION}] {key}: {item!r} is not NAME=VALUE")
        env[name] = val
    return env


@dataclass(frozen=True)
class Settings:
    """The ``[gridengine]`` section.

    Keys beside the resource defaults:

    ``launcher``
        Absolute path of the ``pywps-gridengine-launcher`` console script on the
        exec hosts. Default: ``[processing] path`` + ``/pywps-gridengine-launcher``.
    ``launcher_config``
        Path of pywps.cfg as the exec hosts see it. Default: the web host's
        ``PYWPS_CFG``.
    ``job_name_prefix``
        First part of every SGE job name (default ``wps``).
    ``pass_env``
        Space-separated names of environment variables copied from the web
        worker into the job (default ``TZ LANG LC_ALL``); DRMAA jobs start
        with an almost empty environment.
    ``job_env``
        Extra ``NAME=VALUE`` pairs (space-separated, shell quoting) set in every job.
    ``heartbeat_interval``
        Seconds between the launcher's liveness updates in the database (default 10).
    ``heartbeat_timeout``
        A running job whose launcher has not reported for this long is failed as
        lost (default 30).
    ``gone_grace``
        Seconds a job may be unknown to Grid Engine without an accounting record
        before it is failed anyway (default 15; accounting is flushed late).
    ``submit_timeout``
        A job recorded without an SGE job id for this long is failed: its
        submission never completed (default 120). Also how long a job Grid
        Engine runs may go without its launcher reporting the start before it
        is run again, or failed (see ``max_resubmits``): its exec host died
        between dispatch and start, or its execd never got it.
    ``max_resubmits``
        How often the reconciler submits a job again that Grid Engine lost
        before its launcher started (default 2; 0: never, such a job is
        failed). A job that never started has done nothing, so running it
        again is safe; a job that started is never submitted again.
    ``interval``
        Seconds between reconciler passes in loop mode (default 5: a job Grid Engine
        ended is reported within two passes of its accounting record).
    ``accounting_file``
        Grid Engine's accounting file as the reconciler's host sees it, read
        with ``qacct -f`` (default: qacct's own, the cell's
        ``common/accounting``, which only the qmaster has unless it is shared).
        With it, a job Grid Engine ended is failed with the precise reason
        (deleted, a limit, a signal, an exit status) and its usage.
    ``reporting_file``
        Grid Engine's reporting file as the reconciler's host sees it, written
        with ``reporting_params ... joblog=true``: its job log says who
        deleted a job (``qdel``), which accounting does not (default: none).
    ``db_retry_timeout``
        Seconds a launcher keeps trying to reach the database, at its start and
        to record its final state, before it gives up (default 600): a job
        that finishes while PostgreSQL restarts still records its result.
    ``log_dir``
        Directory (shared) for each job's stdout/stderr, named ``<uuid>.out`` and
        ``<uuid>.err``. Default: the job's own work directory.
    """

    defaults: Resources = field(default_factory=Resources)
    overrides: Mapping[str, Resources] = field(default_factory=dict)
    launcher: str = ""
    launcher_config: str = ""
    job_name_prefix: str = "wps"
    pass_env: tuple[str, ...] = ("TZ", "LANG", "LC_ALL")
    job_env: Mapping[str, str] = field(default_factory=dict)
    base_native_specification: str = ""
    heartbeat_interval: float = 10.0
    heartbeat_timeout: float = 30.0
    gone_grace: float = 15.0
    submit_timeout: float = 120.0
    max_resubmits: int = 2
    interval: float = 5.0
    db_retry_timeout: float = 600.0
    accounting_file: str = ""
    reporting_file: str = ""
    log_dir: str = ""

    def resources_for(self, identifier: str, declared: Mapping[str, object] | None = None) -> Resources:
        """Merge site defaults, the process's declaration and the operator's override."""
        resources = self.defaults
        if declared:
            resources = resources.merged(parse_resources(declared, f"process {identifier!r} gridengine_resources"))
        if identifier in self.overrides:
            resources = resources.merged(self.overrides[identifier])
        return _check_complete(resources, f"resources of process {identifier!r}")

    def native_specification(self, identifier: str, declared: Mapping[str, object] | None = None) -> str:
        generated = self.resources_for(identifier, declared).native_specification()
        return " ".join(part for part in (self.base_native_specification, generated) if part)


def load_settings(cfg: Any = None, cfgfile: str = "") -> Settings:
    """Read and validate the Grid Engine settings from a loaded PyWPS configuration.

    ``cfg`` is PyWPS's parser (default: the one PyWPS has loaded); ``cfgfile``
    the path it was loaded from (the default of ``launcher_config``). Raises
    :class:`ConfigError` with the section and key at fault.
    """
    from pywps import configuration as pywps_config

    from .compat import section_items

    if cfg is None:
        pywps_config.get_config_value("server", "url")  # make sure the configuration is loaded
        cfg = pywps_config.CONFIG
    cfgfile = cfgfile or os.environ.get("PYWPS_CFG", "")
    raw = section_items(cfg, SECTION)
    resource_raw = {k: v for k, v in raw.items() if k in RESOURCE_KEYS}
    defaults = _check_complete(parse_resources(resource_raw, f"[{SECTION}]"), f"[{SECTION}]")

    overrides: dict[str, Resources] = {}
    for section in cfg.sections() if cfg is not None else []:
        if section.startswith(SECTION + ":"):
            identifier = section.split(":", 1)[1].strip()
            if not identifier:
                raise ConfigError(f"[{section}]: missing process identifier after 'gridengine:'")
            overrides[identifier] = parse_resources(section_items(cfg, section), f"[{section}]")

    known = set(RESOURCE_KEYS) | {
        "launcher", "launcher_config", "job_name_prefix", "pass_env", "job_env",
        "heartbeat_interval", "heartbeat_timeout", "gone_grace", "submit_timeout", "interval", "log_dir",
        "db_retry_timeout", "accounting_file", "reporting_file", "max_resubmits",
        *ADMISSION_KEYS,  # admission control: read by load_admission, in every mode
        SYNC_KEY,  # the front door: read by load_sync_max_runtime, in every mode
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"[{SECTION}]: unknown key(s) {', '.join(unknown)}")

    processing_path = _get(cfg, "processing", "path")
    launcher = raw.get("launcher", "").strip() or os.path.join(processing_path, "pywps-gridengine-launcher")
    if not os.path.isabs(launcher):
        raise ConfigError(f"[{SECTION}] launcher = {launcher!r} must be an absolute path (or set [processing] path)")
    launcher_config = raw.get("launcher_config", "").strip() or cfgfile
    prefix = raw.get("job_name_prefix", "wps").strip() or "wps"
    if not re.match(r"^[A-Za-z][A-Za-z0-9_.\-]*$", prefix):
        raise ConfigError(f"[{SECTION}] job_name_prefix = {prefix!r}: use letters, digits, '_', '.', '-'")
    pass_env = tuple(raw["pass_env"].split()) if "pass_env" in raw else Settings.pass_env
    for name in pass_env:
        if not _ENV_NAME.match(name):
            raise ConfigError(f"[{SECTION}] pass_env: {name!r} is not an environment variable name")
    base = _get(cfg, "processing", "drmaa_native_specification")

    settings = Settings(
        defaults=defaults,
        overrides=overrides,
        launcher=launcher,
        launcher_config=launcher_config,
        job_name_prefix=prefix,
        pass_env=pass_env,
        job_env=_env_assignments(raw.get("job_env", ""), "job_env"),
        base_native_specification=base,
        heartbeat_interval=_float(raw, "heartbeat_interval", 10.0),
        heartbeat_timeout=_float(raw, "heartbeat_timeout", 30.0),
        gone_grace=_float(raw, "gone_grace", 15.0),
        submit_timeout=_float(raw, "submit_timeout", 120.0),
        max_resubmits=_whole(raw, "max_resubmits", Settings.max_resubmits, 0),
        interval=_float(raw, "interval", 5.0),
        db_retry_timeout=_float(raw, "db_retry_timeout", 600.0),
        accounting_file=raw.get("accounting_file", "").strip(),
        reporting_file=raw.get("reporting_file", "").strip(),
        log_dir=raw.get("log_dir", "").strip(),
    )
    for key in ("accounting_file", "reporting_file"):
        value = getattr(settings, key)
        if value and not os.path.isabs(value):
            raise ConfigError(f"[{SECTION}] {key} = {value!r} must be an absolute path")
    if settings.log_dir and not os.path.isabs(settings.log_dir):
        raise ConfigError(f"[{SECTION}] log_dir = {settings.log_dir!r} must be an absolute path")
    if settings.heartbeat_timeout <= settings.heartbeat_interval:
        raise ConfigError(
            f"[{SECTION}] heartbeat_timeout ({settings.heartbeat_timeout:g}) must be longer than "
            f"heartbeat_interval ({settings.heartbeat_interval:g})"
        )
    for identifier, override in overrides.items():
        _check_complete(defaults.merged(override), f"[{SECTION}:{identifier}]")
    return settings


def _get(cfg: Any, section: str, key: str) -> str:
    """A value as PyWPS reads it (its defaults included), stripped; '' when unset."""
    from pywps.configuration import RAW_OPTIONS

    if cfg is None or not cfg.has_section(section) or not cfg.has_option(section, key):
        return ""
    return str(cfg.get(section, key, raw=(section, key) in RAW_OPTIONS) or "").strip()


# -- admission control: keys of [gridengine] read in every mode (see admission.py) -------------

ADMISSION_KEYS = ("db_connect_timeout", "shared_tree_timeout", "max_active_jobs", "max_active_jobs_per_client",
                  "trusted_proxies", "retry_after")
#: ``trusted_proxies`` word for a peer on a Unix socket (gunicorn's REMOTE_ADDR is then empty).
UNIX_SOCKET = "unix"
# Database drivers that pass URL query keys to libpq, where ``connect_timeout`` is a connection parameter.
_LIBPQ_DRIVERS = ("psycopg2", "psycopg", "psycopg2cffi")


@dataclass(frozen=True)
class Admission:
    """What the front door admits (:mod:`.admission`): ``[gridengine]`` keys read in every processing mode.

    ``db_connect_timeout``
        Seconds to wait for a PostgreSQL connection (libpq ``connect_timeout``,
        added to ``[logging] database`` unless the URL sets its own; default 3):
        without it a connection to a database host that does not answer waits
        for the kernel's TCP timeout, minutes.
    ``shared_tree_timeout``
        Seconds an Execute waits for the shared tree (outputpath, workdir) to
        answer before it is refused with a 503 (default 2).
    ``max_active_jobs``, ``max_active_jobs_per_client``
        Asynchronous jobs (accepted or started) the service runs at once, in
        total and per client; one more is refused with a 503 ServerBusy
        (default 0: no cap). Counted in the job table, so in scheduler mode only.
    ``trusted_proxies``
        Addresses or networks (space-separated) whose X-Forwarded-For and
        X-Real-IP headers name the client, and ``unix`` for a proxy on
        gunicorn's Unix socket (default ``unix 127.0.0.1 ::1``); any other
        peer is the client itself.
    ``retry_after``
        Seconds a refused client is told to wait (the Retry-After header, default 30).

    The two timeouts together bound how long an Execute waits before a 503:
    5 s with the defaults.
    """

    db_connect_timeout: int = 3
    shared_tree_timeout: float = 2.0
    max_active_jobs: int = 0
    max_active_jobs_per_client: int = 0
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
        ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"))
    trust_unix_socket: bool = True
    retry_after: int = 30


def _whole(raw: Mapping[str, str], key: str, default: int, minimum: int) -> int:
    value = str(raw.get(key, "")).strip()
    if value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"[{SECTION}] {key} = {value!r} is not a whole number") from None
    if number < minimum:
        raise ConfigError(f"[{SECTION}] {key} = {value!r} must be at least {minimum}")
    return number


def load_admission(cfg: Any) -> Admission:
    """Read and validate the admission keys of ``[gridengine]`` (errors name the key)."""
    from .compat import section_items

    raw = section_items(cfg, SECTION)
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    unix = False
    proxies = raw.get("trusted_proxies")
    if proxies is None:
        networks, unix = list(Admission.trusted_proxies), Admission.trust_unix_socket
    else:
        for item in proxies.split():
            if item.lower() == UNIX_SOCKET:
                unix = True
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ConfigError(f"[{SECTION}] trusted_proxies: {item!r} is not an address, a network "
                                  f"or {UNIX_SOCKET!r}") from None
    timeout = _float(raw, "shared_tree_timeout", Admission.shared_tree_timeout)
    if timeout > 60:
        raise ConfigError(f"[{SECTION}] shared_tree_timeout = {timeout:g} must be at most 60 (seconds)")
    return Admission(
        db_connect_timeout=_whole(raw, "db_connect_timeout", Admission.db_connect_timeout, 1),
        shared_tree_timeout=timeout,
        max_active_jobs=_whole(raw, "max_active_jobs", 0, 0),
        max_active_jobs_per_client=_whole(raw, "max_active_jobs_per_client", 0, 0),
        trusted_proxies=tuple(networks),
        trust_unix_socket=unix,
        retry_after=_whole(raw, "retry_after", Admission.retry_after, 1),
    )


def give_pywps_database(database: str) -> None:
    """Make PyWPS's own engine (``dblog.get_session``) use ``database``, the URL with its connect timeout.

    PyWPS reads the URL from its configuration at each session, and reloads
    that configuration from the file when a ``Service`` is built with
    ``cfgfiles``: called by :func:`load` and again by the front door once the
    service exists. Its parser interpolates '%', so a '%' is stored escaped.
    """
    from pywps import configuration as pywps_config

    if database and pywps_config.get_config_value("logging", "database") != database:
        pywps_config.CONFIG.set("logging", "database", database.replace("%", "%%"))


def with_connect_timeout(database: str, seconds: int) -> str:
    """``database`` with libpq's ``connect_timeout`` when its driver is libpq's and the URL sets none.

    Appended to the URL's text rather than rebuilt through SQLAlchemy's URL
    object, which would re-escape the password; other drivers are returned unchanged.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(database)
    except ArgumentError:
        return database  # PyWPS reports a URL it cannot use, with its own message
    if url.get_backend_name() != "postgresql" or url.get_driver_name() not in _LIBPQ_DRIVERS:
        return database
    if "connect_timeout" in url.query:
        return database
    return f"{database}{'&' if '?' in database else '?'}connect_timeout={seconds}"


# -- [fetch]: inputs by reference, fetched under a policy (see fetch.py) ----------------------

FETCH_SECTION = "fetch"
FETCH_KEYS = ("allowed_hosts", "allowed_networks", "refused_networks", "connect_timeout", "read_timeout",
              "total_timeout", "max_redirects")
_FETCH_HOST = re.compile(r"^\.?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


def _fetch_networks(raw: Mapping[str, str], key: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for item in raw.get(key, "").replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(item))
        except ValueError as e:
            raise ConfigError(f"[{FETCH_SECTION}] {key}: {item!r} is not an address or a network ({e})") from None
    return tuple(networks)


def load_fetch_policy(cfg: Any) -> FetchPolicy:
    """Read and validate ``[fetch]``: what the service fetches for inputs given by reference.

    ``allowed_hosts``
        Host names (space- or comma-separated) fetched whatever they resolve
        to; ``.example.org`` allows every name under example.org. Default: none.
    ``allowed_networks``
        Addresses or networks fetched even though they are loopback, private,
        link-local... (e.g. a data server on the site's network). Default: none.
    ``refused_networks``
        Addresses or networks refused besides the special ones: the cluster's
        own public addresses. Default: none (every private range is refused anyway).
    ``connect_timeout``, ``read_timeout``
        Seconds to wait for a connection, and for each read (defaults 5 and 10).
    ``total_timeout``
        Seconds a whole fetch may take, redirects included (default 60).
    ``max_redirects``
        Redirects followed, each checked like the first URL (default 5, at most 20).

    The size bound is PyWPS's ``[server] maxsingleinputsize``.
    """
    from .compat import section_items

    raw = section_items(cfg, FETCH_SECTION)
    unknown = sorted(set(raw) - set(FETCH_KEYS))
    if unknown:
        raise ConfigError(f"[{FETCH_SECTION}]: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(FETCH_KEYS)}")
    hosts = []
    for item in raw.get("allowed_hosts", "").replace(",", " ").split():
        host = item.lower().rstrip(".")
        if not _FETCH_HOST.match(host):
            raise ConfigError(f"[{FETCH_SECTION}] allowed_hosts: {item!r} is not a host name (or .domain)")
        hosts.append(host)
    redirects = str(raw.get("max_redirects", "")).strip()
    if redirects and not (redirects.isdigit() and int(redirects) <= 20):
        raise ConfigError(f"[{FETCH_SECTION}] max_redirects = {redirects!r} must be a whole number from 0 to 20")
    return FetchPolicy(
        allowed_hosts=tuple(hosts),
        allowed_networks=_fetch_networks(raw, "allowed_networks"),
        refused_networks=_fetch_networks(raw, "refused_networks"),
        connect_timeout=_float(raw, "connect_timeout", FetchPolicy.connect_timeout, FETCH_SECTION, 3600),
        read_timeout=_float(raw, "read_timeout", FetchPolicy.read_timeout, FETCH_SECTION, 3600),
        total_timeout=_float(raw, "total_timeout", FetchPolicy.total_timeout, FETCH_SECTION, 3600),
        max_redirects=int(redirects) if redirects else FetchPolicy.max_redirects,
    )


def configured_fetch_policy(cfg: Any) -> FetchPolicy:
    """:func:`load_fetch_policy`, made the policy of every fetch in this process (:func:`.fetch.configure`)."""
    policy = load_fetch_policy(cfg)
    configure(policy)
    return policy


# -- end of [fetch]


# -- the front door: [gridengine] sync_max_runtime, read in every mode (see frontdoor.py) ----------

SYNC_KEY = "sync_max_runtime"
#: Below gunicorn's and nginx's 300 s request timeout, with room for the answer to be sent.
DEFAULT_SYNC_MAX_RUNTIME = 240.0


def load_sync_max_runtime(cfg: Any) -> float:
    """``[gridengine] sync_max_runtime``: the longest a synchronous Execute may be expected to run, in
    seconds (default 240). Keep it below the proxy's and gunicorn's request timeout: a longer request
    is cut off there instead of refused with advice here."""
    from .compat import section_items

    return _float(section_items(cfg, SECTION), SYNC_KEY, DEFAULT_SYNC_MAX_RUNTIME)


# -- end of the front door


# -- [jobs]: job control for clients (see jobcontrol.py) -------------------------------------------

JOBS_SECTION = "jobs"
JOBS_KEYS = ("identity_header", "operators", "job_list", "log_tail_bytes", "ogcapi_url")
_HEADER = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,63}")
_BOOLEANS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def load_jobs(cfg: Any) -> Access:
    """``[jobs]``: the identity header nginx sets ('' = no identity), the operators, whether the job list
    is on without identity, the log tail's size cap, and the OGC API's public address."""
    from .compat import section_items

    raw = section_items(cfg, JOBS_SECTION)
    unknown = sorted(set(raw) - set(JOBS_KEYS))
    if unknown:
        raise ConfigError(f"[{JOBS_SECTION}]: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(JOBS_KEYS)}")
    header = raw.get("identity_header", "").strip()
    if header and not _HEADER.fullmatch(header):
        raise ConfigError(f"[{JOBS_SECTION}] identity_header = {header!r} is not an HTTP header name")
    job_list = raw.get("job_list", "").strip().lower()
    if job_list and job_list not in _BOOLEANS:
        raise ConfigError(f"[{JOBS_SECTION}] job_list = {job_list!r} must be true or false")
    tail = raw.get("log_tail_bytes", "").strip() or "65536"
    if not tail.isdigit() or not 0 < int(tail) <= 16 * 2**20:
        raise ConfigError(f"[{JOBS_SECTION}] log_tail_bytes = {tail!r} must be a number of bytes from 1 to 16 MiB")
    url = raw.get("ogcapi_url", "").strip().rstrip("/")
    if url and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        raise ConfigError(f"[{JOBS_SECTION}] ogcapi_url = {url!r} is not an http(s) URL")
    operators = frozenset(name for name in re.split(r"[\s,]+", raw.get("operators", "")) if name)
    return Access(identity_header=header, operators=operators, job_list=_BOOLEANS.get(job_list, False),
                  log_tail_bytes=int(tail), ogcapi_url=url)


# -- end of [jobs]

SCHEDULER = "scheduler"


@dataclass(frozen=True)
class AppConfig:
    """Everything the app reads from pywps.cfg, loaded once per process by :func:`load`.

    ``own`` holds the values pywps.cfg itself sets for the keys the app reads
    (PyWPS's built-in defaults left out, see :attr:`explicit`): the cleanup
    never guesses where job files are.
    """

    cfgfile: str
    mode: str
    url: str
    outputurl: str
    outputpath: str
    workdir: str
    language: str
    database: str
    prefix: str
    bindir: str
    log_level: str
    log_file: str
    log_format: str
    gridengine: Settings | None
    explicit: frozenset[tuple[str, str]] = frozenset()
    admission: Admission = field(default_factory=Admission)  # admission control (admission.py)
    fetch: FetchPolicy = field(default_factory=FetchPolicy)  # [fetch]: inputs by reference (fetch.py)
    sync_max_runtime: float = DEFAULT_SYNC_MAX_RUNTIME  # the front door (frontdoor.py)
    jobs: Access = field(default_factory=Access)  # [jobs]: job control for clients (jobcontrol.py)

    @property
    def scheduler(self) -> bool:
        return self.mode == SCHEDULER

    @property
    def log_dir(self) -> str:
        """Where Grid Engine writes each job's stdout/stderr ('' = the job's work directory)."""
        return self.gridengine.log_dir if self.gridengine is not None else ""

    def is_set(self, section: str, key: str) -> bool:
        """Whether pywps.cfg itself sets ``[section] key`` (not a PyWPS default)."""
        return (section, key) in self.explicit

    def __deepcopy__(self, memo: dict[int, Any]) -> AppConfig:
        # Immutable: PyWPS deep-copies a process per request, the configuration stays shared.
        return self


def load(cfgfile: str | None = None) -> AppConfig:
    """Load pywps.cfg (``cfgfile``, else ``$PYWPS_CFG``) into PyWPS and into an :class:`AppConfig`.

    Sets ``PYWPS_CFG`` (the one place that does): PyWPS reads it when its
    database module is imported and when it loads its configuration, and the
    job environment passes it on. In scheduler mode the ``[gridengine]``
    sections are validated here, so a bad section stops the process at start.
    Raises :class:`ConfigError` for a missing file or a bad value.
    """
    import configparser

    cfgfile = cfgfile or os.environ.get("PYWPS_CFG") or ""
    if cfgfile:
        cfgfile = os.path.abspath(cfgfile)
        if not os.path.isfile(cfgfile) or not os.access(cfgfile, os.R_OK):
            raise ConfigError(f"configuration {cfgfile} does not exist or is not readable")
        os.environ["PYWPS_CFG"] = cfgfile
    from pywps import configuration as pywps_config

    try:
        pywps_config.load_configuration([cfgfile] if cfgfile else None)
        own = configparser.RawConfigParser(default_section="\0", interpolation=None)
        if cfgfile:
            own.read(cfgfile, encoding="utf-8")
    except configparser.Error as e:
        raise ConfigError(f"configuration {cfgfile}: {str(e).splitlines()[0]}") from None
    cfg = pywps_config.CONFIG
    explicit = frozenset((section, key) for section in own.sections() for key in own.options(section))
    mode = (_get(cfg, "processing", "mode") or "default").lower()
    # -- admission control: every database connection of the app is bounded in time
    admission = load_admission(cfg)
    database = with_connect_timeout(_get(cfg, "logging", "database"), admission.db_connect_timeout)
    give_pywps_database(database)
    # -- end of admission control
    return AppConfig(
        cfgfile=cfgfile,
        mode=mode,
        url=_get(cfg, "server", "url"),
        outputurl=_get(cfg, "server", "outputurl"),
        outputpath=_get(cfg, "server", "outputpath"),
        workdir=_get(cfg, "server", "workdir"),
        language=(_get(cfg, "server", "language") or "en-US").split(",")[0].strip(),
        database=database,
        prefix=_get(cfg, "logging", "prefix"),
        bindir=_get(cfg, "processing", "path"),
        log_level=_get(cfg, "logging", "level") or "INFO",
        log_file=_get(cfg, "logging", "file"),
        log_format=_get(cfg, "logging", "format"),
        gridengine=load_settings(cfg, cfgfile) if mode == SCHEDULER else None,
        explicit=explicit,
        admission=admission,
        fetch=configured_fetch_policy(cfg),  # [fetch]: inputs by reference (fetch.py)
        sync_max_runtime=load_sync_max_runtime(cfg),  # the front door (frontdoor.py)
        jobs=load_jobs(cfg),  # [jobs]: job control for clients (jobcontrol.py)
    )
