"""``pywps-gridengine-jobs``: which Grid Engine job belongs to which WPS request, for operators on a web host.

Usage (as the service user, who alone may read pywps.cfg)::

    pywps-gridengine-jobs list [--state S] [--process ID] [--since DURATION|ISO] [--limit N] [--offset N] [--json]
    pywps-gridengine-jobs show JOB [--json]
    pywps-gridengine-jobs log JOB [--lines N]

``JOB`` is a WPS job uuid, a prefix of one that only one job has, or a Grid
Engine job id (``sge:123``, or a bare number: a Grid Engine job id first,
else a uuid prefix). ``--config PATH`` names pywps.cfg (default
``$PYWPS_CFG``, else ``/etc/pywps/pywps.cfg``); it is loaded with the app's
one loader (:func:`.config.load`), so the database and its password come from
that file and never from the command line.

Everything it reads from the database goes through :class:`.jobs.JobStore`
(read-only queries; it never creates a table). The files it shows are those
the rest of the app writes: the status document ``<outputpath>/<uuid>.xml``,
the outputs ``<outputpath>/<uuid>/``, the job's work directory, and its
stdout/stderr ``<uuid>.out``/``.err`` in ``[gridengine] log_dir`` or else the
work directory (:func:`.scheduler.build_job_spec`). Like the clean-up, it only
looks inside the configured directories (:func:`.paths.contained`). The
shared tree is an NFS mount that can hang: every file access runs in a thread
of its own and is given up after :data:`FILES_TIMEOUT` seconds.

Exit status: 0 done; 1 unknown job, ambiguous prefix or Grid Engine job id,
database unreachable, shared tree not answering; 2 bad arguments or
configuration. Every error is one line on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import re
import stat
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from .config import AppConfig, ConfigError
from .jobs import FINAL_STATES, JobRecord, JobState, JobStore
from .paths import contained, status_document

PROG = "pywps-gridengine-jobs"
DEFAULT_CONFIG = "/etc/pywps/pywps.cfg"
DEFAULT_LIMIT = 50
DEFAULT_LINES = 20
MAX_LINES = 10_000
#: The most a ``log`` reads from the end of each file, whatever ``--lines`` asks.
TAIL_MAX_BYTES = 1 << 20
#: Seconds the shared tree gets to answer (stat, a bounded tail) before the command gives up on it.
FILES_TIMEOUT = 10.0
#: How many candidates an ambiguous prefix or Grid Engine job id error names.
CANDIDATES = 5
REASON_WIDTH = 72

STATE_CHOICES = {**{state.value: (state,) for state in JobState}, "active": (JobState.ACCEPTED, JobState.STARTED),
                 "ended": FINAL_STATES}
_UUID_PREFIX = re.compile(r"^[0-9a-f][0-9a-f-]*$")
_SGE_ID = re.compile(r"^sge:(\d+)$")
_DURATION = re.compile(r"^(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
# Names the app itself gives files (a uuid); anything else read from the database is not made into a path.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
# Control characters (C0 but tab, DEL, C1): a job's log or a database value could otherwise drive the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")

HELP = f"""\
Show which Grid Engine job belongs to which WPS request: the job rows of the
job database, the files each job left on the shared tree, the tail of its logs.

Run it as the service user on a web host (e.g. sudo -u wps {PROG} list):
pywps.cfg holds the database password and is readable by the service user
only. The database comes from that file (--config, default $PYWPS_CFG, else
{DEFAULT_CONFIG}), never from the command line.

Exit status: 0 done; 1 unknown job, ambiguous prefix or id, database or shared
tree not answering; 2 bad arguments or configuration.
"""

EPILOG = f"Run it as the service user (e.g. sudo -u wps {PROG} ...): pywps.cfg is readable by that user only."

T = TypeVar("T")


class InspectError(Exception):
    """Reported as one line on stderr; ``status`` is the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


# -- values on the command line ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Since:
    """``--since``: a duration back from the database's clock, or a moment (naive UTC)."""

    ago: dt.timedelta | None = None
    moment: dt.datetime | None = None

    def cutoff(self, store: JobStore) -> dt.datetime:
        # Ages are judged by the database's clock, which stamped the rows (as the reconciler does).
        return self.moment if self.moment is not None else store.db_now() - (self.ago or dt.timedelta())


def parse_since(text: str) -> Since:
    """``2h``, ``1d12h``, ``30m``, ``1w`` or an ISO 8601 date/time (UTC unless it names an offset).

    The duration grammar is these five units and nothing else: a library for
    it (isodate, pytimeparse) would be one more dependency on every host for a
    dozen lines.
    """
    value = text.strip()
    match = _DURATION.match(value)
    if value and match:
        return Since(ago=dt.timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for u, n in match.groupdict().items()
                                                  if n is not None)))
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration (30m, 2h, 1d12h, 1w) nor an ISO 8601 date/time") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return Since(moment=moment)


def _bounded_int(lowest: int, highest: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not lowest <= number <= highest:
            raise argparse.ArgumentTypeError(f"{number} is not between {lowest} and {highest}")
        return number

    return parse


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: given after the subcommand it wins, else the top-level value (or default) stays.
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help=f"pywps.cfg (default: $PYWPS_CFG, else {DEFAULT_CONFIG})")
    parser = argparse.ArgumentParser(prog=PROG, description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="PATH", default=None,
                        help=f"pywps.cfg (default: $PYWPS_CFG, else {DEFAULT_CONFIG})")
    commands = parser.add_subparsers(dest="command", metavar="{list,show,log}", required=True)

    listing = commands.add_parser("list", parents=[common], epilog=EPILOG, help="jobs, newest first, one line each",
                                  description="Jobs newest first, one line each: uuid, process, state, Grid Engine "
                                              "job id, exec host, created/started/ended (UTC), short reason.")
    listing.add_argument("--state", choices=sorted(STATE_CHOICES),
                         help="only jobs in this state (active: accepted or started; ended: succeeded or failed)")
    listing.add_argument("--process", metavar="ID", help="only jobs of this process identifier")
    listing.add_argument("--since", metavar="DURATION|ISO", type=parse_since,
                         help="only jobs created since then: 30m, 2h, 1d12h, 1w back, or an ISO 8601 date/time "
                              "(UTC unless it names an offset)")
    listing.add_argument("--limit", metavar="N", type=_bounded_int(1, 1_000_000), default=DEFAULT_LIMIT,
                         help=f"at most N jobs (default {DEFAULT_LIMIT})")
    listing.add_argument("--offset", metavar="N", type=_bounded_int(0, 100_000_000), default=0,
                         help="skip the newest N jobs of the list (the next page: --offset plus --limit)")
    listing.add_argument("--json", action="store_true", help="one JSON list, times in ISO 8601 UTC")

    job_help = "a WPS job uuid, a unique prefix of one, or a Grid Engine job id (sge:123, or a bare number)"
    show = commands.add_parser("show", parents=[common], epilog=EPILOG, help="every field of one job and its files",
                               description="Every field of a job's row, and its files (status document, outputs, "
                                           "work directory, stdout/stderr), each marked present or absent.")
    show.add_argument("job", metavar="JOB", help=job_help)
    show.add_argument("--json", action="store_true", help="one JSON object, times in ISO 8601 UTC")

    log = commands.add_parser("log", parents=[common], epilog=EPILOG, help="the tail of a job's stderr and stdout",
                              description="The last lines of a job's stderr and stdout files, or why they are not "
                                          f"there. At most {TAIL_MAX_BYTES // 1024} KiB of each file are read.")
    log.add_argument("job", metavar="JOB", help=job_help)
    log.add_argument("--lines", "-n", metavar="N", type=_bounded_int(1, MAX_LINES), default=DEFAULT_LINES,
                     help=f"lines of each file (default {DEFAULT_LINES}, at most {MAX_LINES})")
    return parser


# -- configuration and database ------------------------------------------------------------------


def _redacted(database: str) -> str:
    try:
        return sa.engine.make_url(database).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: name the setting, not the value
        return "[logging] database"


def load_config(path: str | None) -> AppConfig:
    from . import config as app_config

    cfgfile = path or os.environ.get("PYWPS_CFG") or DEFAULT_CONFIG
    try:
        # The roles make both the file and its directory readable by the service user only.
        readable = not os.path.isfile(cfgfile) or os.access(cfgfile, os.R_OK)
        os.stat(cfgfile)
    except PermissionError:
        readable = False
    except OSError:
        pass  # missing: the loader says so
    if not readable:
        raise InspectError(f"configuration {cfgfile} is not readable by this user: run {PROG} as the service "
                           f"user (e.g. sudo -u wps {PROG} ...)", 2)
    try:
        config = app_config.load(cfgfile)
    except ConfigError as e:
        raise InspectError(str(e), 2) from None
    if not config.is_set("logging", "database") or ":memory:" in config.database:
        raise InspectError(f"[logging] database is not set in {config.cfgfile} (or is an in-memory database)", 2)
    return config


def open_store(config: AppConfig) -> JobStore:
    """The job store on its own engine, read only: no table is created, no connection kept."""
    try:
        engine = sa.create_engine(config.database, poolclass=sa.pool.NullPool)
        return JobStore(engine, config.prefix, create_table=False)
    except (sa.exc.SQLAlchemyError, ImportError) as e:
        raise database_error(e, config.database) from None


def database_error(e: Exception, database: str) -> InspectError:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return InspectError(f"database unreachable ({_redacted(database)}): {first.replace(database, _redacted(database))}")


# -- finding a job --------------------------------------------------------------------------------


def _candidates(jobs: Sequence[JobRecord], more: bool) -> str:
    named = ", ".join(f"{job.uuid} ({job.identifier}, created {iso(job.created_at)})" for job in jobs[:CANDIDATES])
    return named + (", ..." if more or len(jobs) > CANDIDATES else "")


def resolve(store: JobStore, text: str) -> JobRecord:
    """The one job ``text`` names (see the module's docstring), else :class:`InspectError`."""
    value = text.strip().lower()
    sge = _SGE_ID.match(value)
    if sge or (value.isascii() and value.isdigit()):
        number = sge.group(1) if sge else value
        found = store.by_sge_job_id(number)
        if len(found) == 1:
            return found[0]
        if found:
            raise InspectError(f"Grid Engine job id {number} belongs to {len(found)} jobs (Grid Engine reuses ids): "
                               f"{_candidates(found, False)}; give the uuid")
        if sge:
            raise InspectError(f"no job with Grid Engine job id {number}")
    if not _UUID_PREFIX.match(value):
        raise InspectError(f"JOB {text!r} is not a uuid, a uuid prefix or a Grid Engine job id (sge:123)", 2)
    found = store.by_uuid_prefix(value, limit=CANDIDATES + 1)
    exact = [job for job in found if job.uuid == value]
    if exact:
        return exact[0]
    if len(found) == 1:
        return found[0]
    if not found:
        also = f"no job with Grid Engine job id {value} or " if value.isdigit() else "no job with "
        raise InspectError(f"{also}a uuid starting with {value!r}")
    raise InspectError(f"uuid prefix {value!r} is ambiguous, it matches {_candidates(found, len(found) > CANDIDATES)}; "
                       "give more of the uuid")


# -- the job's files ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class JobFile:
    """One file or directory of a job: where it is and whether it is there (None: could not tell)."""

    what: str
    path: str | None
    present: bool | None = None
    kind: str | None = None  # "file", "directory", "symlink", "other"
    size: int | None = None
    note: str = ""

    @property
    def state(self) -> str:
        if self.present is None:
            return "unknown"
        return "present" if self.present else "absent"


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    return "symlink" if stat.S_ISLNK(mode) else "other"


def _look(what: str, path: str | None, note: str = "") -> JobFile:
    if path is None:
        return JobFile(what, None, None, note=note)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return JobFile(what, path, False, note=note)
    except OSError as e:
        return JobFile(what, path, None, note=e.strerror or str(e))
    kind = _kind(st.st_mode)
    return JobFile(what, path, True, kind, st.st_size if kind == "file" else None, note)


def job_paths(config: AppConfig, job: JobRecord) -> dict[str, tuple[str | None, str]]:
    """(path or None, why not) of each of the job's files, as the app names them; nothing outside its directories."""
    paths: dict[str, tuple[str | None, str]] = {}
    safe = bool(_SAFE_NAME.match(job.uuid))
    unsafe = "the uuid is not a file name; not looked for"
    outputs = config.outputpath
    paths["status document"] = (status_document(outputs, job.uuid), "") if safe and outputs else (None, unsafe)
    paths["outputs"] = (os.path.join(outputs, job.uuid), "") if safe and outputs else (None, unsafe)
    workdir: str | None = None
    if not job.workdir:
        paths["work directory"] = (None, "not recorded")
    elif config.workdir and contained(Path(config.workdir), job.workdir) is not None:
        workdir = job.workdir
        paths["work directory"] = (workdir, "")
    else:
        paths["work directory"] = (None, f"{job.workdir!r} is not in [server] workdir; not looked at")
    log_dir = config.log_dir or workdir
    for stream, suffix in (("stdout", "out"), ("stderr", "err")):
        if not safe:
            paths[stream] = (None, unsafe)
        elif log_dir is None:
            paths[stream] = (None, "no [gridengine] log_dir and no usable work directory")
        else:
            paths[stream] = (os.path.join(log_dir, f"{job.uuid}.{suffix}"), "")
    return paths


def within(seconds: float, work: Callable[[], T], what: str) -> T:
    """``work()`` in a daemon thread, given up after ``seconds`` (a hard NFS mount blocks in the kernel).

    A blocked thread cannot be interrupted; it is left behind and ends with
    the process.
    """
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=run, name=f"{PROG}-files", daemon=True).start()
    if not done.wait(seconds):
        raise InspectError(f"{what} did not answer within {seconds:g} s (a hung NFS mount?)")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def job_files(config: AppConfig, job: JobRecord) -> list[JobFile]:
    # job_paths resolves the work directory's parent (realpath): that touches the shared tree too.
    return within(FILES_TIMEOUT, lambda: [_look(what, path, note) for what, (path, note)
                                          in job_paths(config, job).items()], "the shared tree")


# -- tails of the logs ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Tail:
    lines: list[str]
    size: int
    cut: bool  # the file holds more than was shown


def tail(path: str, lines: int, max_bytes: int = TAIL_MAX_BYTES) -> Tail:
    """The last ``lines`` lines of a regular file, reading at most ``max_bytes`` back from its end.

    Read backwards in blocks, since a job's log can be gigabytes (the
    standard library has no tail). The file is opened without following a
    symbolic link and without blocking on a FIFO; anything but a regular file
    raises :class:`OSError`. Bytes that are not UTF-8 and control
    characters are shown escaped.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(0, "not a regular file", path)
        position, chunks, read, newlines = st.st_size, [], 0, 0
        while position > 0 and read < max_bytes and newlines <= lines:
            size = min(64 * 1024, position, max_bytes - read)
            position -= size
            chunk = os.pread(fd, size, position)
            chunks.insert(0, chunk)
            read += len(chunk)
            newlines += chunk.count(b"\n")
    finally:
        os.close(fd)
    data = b"".join(chunks)
    text = data.decode("utf-8", errors="backslashreplace")
    found = text.splitlines()
    if position > 0 and found:
        if "\n" in text:
            found = found[1:]  # the first line read starts in the middle
        else:
            found[0] = "[...]" + found[0]
    shown = found[-lines:]
    return Tail([clean(line) for line in shown], st.st_size, position > 0 or len(found) > len(shown))


# -- output ---------------------------------------------------------------------------------------


def iso(value: dt.datetime | None, *, seconds: bool = False) -> str | None:
    """A naive UTC time of the job table as ISO 8601 with ``Z``."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC).isoformat(timespec="seconds" if seconds else "auto").replace("+00:00", "Z")


def clean(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def short_reason(message: str | None, width: int = REASON_WIDTH) -> str:
    first = clean((message or "").strip().splitlines()[0]) if (message or "").strip() else ""
    return first if len(first) <= width else first[: width - 3] + "..."


def memory(value: float) -> str:
    """Bytes as Grid Engine writes memory (binary units: 512.0M)."""
    if value < 1024:
        return f"{value:.0f}"
    for unit in ("K", "M", "G"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f}{unit}"
    return f"{value / 1024:.1f}T"


def job_json(job: JobRecord) -> dict[str, Any]:
    return {key: iso(value) if isinstance(value, dt.datetime) else value
            for key, value in dataclasses.asdict(job).items()}


def file_json(item: JobFile) -> dict[str, Any]:
    return {"path": item.path, "present": item.present, "kind": item.kind, "bytes": item.size,
            **({"note": item.note} if item.note else {})}


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2))


LIST_COLUMNS = ("UUID", "PROCESS", "STATE", "SGE JOB", "EXEC HOST", "CREATED (UTC)", "STARTED", "ENDED", "REASON")


def list_row(job: JobRecord) -> tuple[str, ...]:
    return (clean(job.uuid), clean(job.identifier), clean(job.state), clean(job.sge_job_id or "-"),
            clean(job.exec_host or "-"), iso(job.created_at, seconds=True) or "-",
            iso(job.started_at, seconds=True) or "-", iso(job.finished_at, seconds=True) or "-",
            short_reason(job.message) or "-")


def print_table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(LIST_COLUMNS))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


# Every field of the job row, in the order ``show`` prints them, with its label.
SHOW_FIELDS = (
    ("uuid", "uuid"), ("identifier", "process"), ("state", "state"), ("message", "message"),
    ("sge_job_id", "Grid Engine job"), ("resubmits", "resubmitted"), ("job_name", "job name"),
    ("native_specification", "native spec"),
    ("client", "client"), ("owner", "owner"), ("exec_host", "exec host"), ("workdir", "workdir"),
    ("created_at", "created"), ("submitted_at", "submitted"), ("started_at", "started"),
    ("heartbeat_at", "heartbeat"), ("gone_since", "gone since"), ("finished_at", "finished"),
    ("updated_at", "updated"), ("exit_status", "exit status"), ("wallclock", "wallclock"), ("cpu", "cpu"),
    ("peak_memory", "peak memory"),
)


def show_value(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return iso(value) or "-"
    if name in ("wallclock", "cpu"):
        return f"{value:g} s"
    if name == "peak_memory":
        return f"{value:.0f} bytes ({memory(value)})"
    return clean(str(value))


def print_show(job: JobRecord, files: list[JobFile] | None, files_error: str | None) -> None:
    width = max(len(label) for _, label in SHOW_FIELDS) + 1
    for name, label in SHOW_FIELDS:
        print(f"{label + ':':<{width}} {show_value(name, getattr(job, name))}")
    print("files:")
    if files is None:
        print(f"  unknown: {files_error}")
        return
    what_width = max(len(item.what) for item in files)
    for item in files:
        extra = f" ({item.size} bytes)" if item.size is not None else ""
        extra += f" ({item.kind})" if item.kind not in (None, "file", "directory") else ""
        note = f" [{item.note}]" if item.note else ""
        print(f"  {item.what:<{what_width}}  {item.state:<7}  {clean(item.path or '-')}{extra}{note}")


# -- the commands ---------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace, config: AppConfig, store: JobStore) -> int:
    since = args.since.cutoff(store) if args.since is not None else None
    states = STATE_CHOICES[args.state] if args.state else ()
    jobs = store.find(states=states, identifier=args.process, since=since, limit=args.limit + 1, offset=args.offset)
    more, jobs = len(jobs) > args.limit, jobs[: args.limit]
    if args.json:
        print_json([job_json(job) for job in jobs])
    elif jobs:
        print_table([LIST_COLUMNS, *(list_row(job) for job in jobs)])
    else:
        print("no jobs")
    if more:
        skipped = f" after the newest {args.offset}" if args.offset else ""
        print(f"{PROG}: showing the newest {args.limit} jobs{skipped}; there are more "
              f"(--limit, next page: --offset {args.offset + args.limit})", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace, config: AppConfig, store: JobStore) -> int:
    job = resolve(store, args.job)
    files: list[JobFile] | None = None
    error: str | None = None
    try:
        files = job_files(config, job)
    except InspectError as e:
        error = str(e)
    if args.json:
        document = job_json(job)
        document["files"] = ({item.what.replace(" ", "_"): file_json(item) for item in files}
                             if files is not None else None)
        print_json(document)
    else:
        print_show(job, files, error)
    if error is not None:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    return 0


def _absence(job: JobRecord) -> str:
    if job.state == JobState.ACCEPTED:
        return "not written yet: the job has not started"
    return "gone: removed by the clean-up (pywps-gridengine-cleanup), or never written"


def cmd_log(args: argparse.Namespace, config: AppConfig, store: JobStore) -> int:
    job = resolve(store, args.job)

    def read() -> list[str]:
        paths = job_paths(config, job)
        out: list[str] = []
        for stream in ("stderr", "stdout"):
            path, note = paths[stream]
            if path is None:
                out.append(f"==> {stream}: unknown ({note}) <==")
                continue
            try:
                got = tail(path, args.lines)
            except FileNotFoundError:
                out.append(f"==> {stream}: {clean(path)}: {_absence(job)} <==")
                continue
            except OSError as e:
                out.append(f"==> {stream}: {clean(path)}: cannot read it: {e.strerror or e} <==")
                continue
            count = f"{len(got.lines)} line{'' if len(got.lines) == 1 else 's'}"
            part = f"last {count}" if got.cut else count
            out.append(f"==> {stream}: {clean(path)} ({part}, {got.size} bytes) <==")
            out.extend(got.lines)
        return out

    for line in within(FILES_TIMEOUT, read, "the shared tree"):
        print(line)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace, AppConfig, JobStore], int]] = {
    "list": cmd_list, "show": cmd_show, "log": cmd_log}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # bad arguments: argparse's usage message, exit 2
    try:
        config = load_config(args.config)
        store = open_store(config)
        try:
            return COMMANDS[args.command](args, config, store)
        except (sa.exc.SQLAlchemyError, ImportError) as e:
            raise database_error(e, config.database) from None
    except InspectError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return e.status
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, as the Python documentation advises.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
