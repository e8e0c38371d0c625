"""``pywps-gridengine-cleanup``: removes what WPS jobs that ended long ago leave behind.

Usage (daily, from a systemd timer, as the service user)::

    pywps-gridengine-cleanup [--config PYWPS_CFG] --days N [--dry-run] [--verbose]

A job counts as ended more than N days ago when every row it has says so:
PyWPS's ``<prefix>requests`` row is Succeeded/Failed with ``time_end`` before
the cutoff, the app's ``<prefix>gridengine_jobs`` row (if any) is
succeeded/failed with ``finished_at`` before the cutoff, and the job is not
waiting in PyWPS's ``<prefix>stored_requests``. A job with any row still
Accepted/Started/queued is left alone whatever its age: failing those is the
reconciler's business. For an ended job it deletes

* ``<outputpath>/<uuid>.xml`` (the status document) and ``<outputpath>/<uuid>/``
  (outputs stored by reference: PyWPS's ``FileStorage`` puts them there);
* the job's work directory recorded in the job table (a ``pywps_process_*``
  directory directly under ``[server] workdir``: job dump, and the job's
  stdout/stderr when ``[gridengine] log_dir`` is not set);
* ``<log_dir>/<uuid>.out`` and ``.err`` when ``[gridengine] log_dir`` is set;
* then its rows in ``<prefix>requests`` and ``<prefix>gridengine_jobs``. Rows
  are kept when a file could not be deleted, so the next run retries.

Rows of other operations (GetCapabilities, DescribeProcess: PyWPS logs every
request) that ended before the cutoff are deleted as well; they own no files.

Orphans, entries with no database row at all whose newest modification
(anywhere in the tree) is older than N days, are deleted too: in ``outputpath``
status documents ``<uuid>.xml`` and output directories ``<uuid>/`` named by a
UUID, and temporary status files ``.<uuid>.xml.*.tmp`` left by an interrupted
write; in ``workdir`` the ``pywps_process_*`` directories no job row refers to
(synchronous requests, or left when ``cleantempdir`` is off); in ``log_dir``
``<uuid>.out``/``.err``. Nothing else in those directories is looked at. A
job PyWPS runs itself (local mode, synchronous requests) has a work directory
no table records: while such a request is open and its pid alive on this host,
no work directory changed after it started is taken for an orphan.

Every path is checked before it is deleted: it has to be a direct child of
``outputpath``, ``workdir`` or ``log_dir`` once its parent is resolved (so a
``workdir`` value of ``/etc``, a relative one or one climbing out with ``..``
is refused), and a symbolic link is removed as a link, never followed.

Timestamps: PyWPS writes ``time_end`` in local time, the job table uses UTC;
each is compared with a cutoff on its own clock.

Exit status: 0 done (a file already gone is not an error), 1 some paths could
not be deleted (see stderr), 2 bad configuration or database error.
"""

from __future__ import annotations

import argparse
import configparser
import datetime as dt
import os
import re
import shutil
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .jobs import FINAL_STATES, _table as _jobs_table, utcnow

PROG = "pywps-gridengine-cleanup"

# pywps.response.status.WPS_STATUS.SUCCEEDED / FAILED
PYWPS_SUCCEEDED = 4
PYWPS_FAILED = 5
PYWPS_FINAL = (PYWPS_SUCCEEDED, PYWPS_FAILED)

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# What a uuid read from the database may look like before it is used in a file name.
SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
# atomic_write's temporary file: "." + "<uuid>.xml" + "." + random + ".tmp"
TMP_STATUS_RE = re.compile(r"^\.(?P<uuid>[^/]+)\.xml\.[^./]+\.tmp$")
WORKDIR_PREFIX = "pywps_process_"
CHUNK = 500


class CleanupError(Exception):
    """Bad configuration or database trouble: reported in one line, exit 2."""


# -- paths -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Roots:
    """The only directories anything is deleted from (real paths)."""

    outputpath: Path
    workdir: Path
    log_dir: Path | None = None


def contained(root: Path, candidate: str | os.PathLike[str]) -> Path | None:
    """``candidate`` as a direct child of ``root``, or None if it is not one.

    ``candidate`` must be absolute. ``..`` is normalised and the parent
    directory resolved (symbolic links included) before the comparison; the last
    component is kept as is, so a symbolic link is judged and removed as the
    link itself. ``root`` itself, or anything outside it, is None.
    """
    text = os.fspath(candidate)
    if not text or "\0" in text or not os.path.isabs(text):
        return None
    normal = os.path.abspath(text)
    name = os.path.basename(normal)
    if name in ("", ".", ".."):
        return None
    parent = os.path.realpath(os.path.dirname(normal))
    if parent != os.path.realpath(root):
        return None
    return Path(parent, name)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def tree_usage(path: Path) -> tuple[float, int]:
    """(newest mtime, bytes of regular files) of ``path`` and, for a directory, all below it.

    Symbolic links are not followed. Entries vanishing meanwhile are skipped.
    """
    st = _lstat(path)
    if st is None:
        return 0.0, 0
    newest = st.st_mtime
    size = st.st_size if stat.S_ISREG(st.st_mode) else 0
    if stat.S_ISDIR(st.st_mode):
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            for name in dirnames + filenames:
                sub = _lstat(Path(dirpath, name))
                if sub is None:
                    continue
                newest = max(newest, sub.st_mtime)
                if stat.S_ISREG(sub.st_mode):
                    size += sub.st_size
    return newest, size


def _alive(pid: object) -> bool:
    """Whether process ``pid`` exists on this host (PyWPS's own crash test); unknown counts as alive."""
    try:
        number = int(pid)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return True
    if number <= 0:
        return True
    try:
        os.kill(number, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ignore_missing(func: Callable[..., object], path: str, exc_info: tuple) -> None:
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]


def remove(path: Path) -> bool:
    """Delete a file, a symbolic link (not its target) or a directory tree. False if it was not there."""
    st = _lstat(path)
    if st is None:
        return False
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path, onerror=_ignore_missing)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
    return True


# -- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    roots: Roots
    database: str
    prefix: str


def _value(own: configparser.RawConfigParser, section: str, key: str) -> str:
    """``key`` if pywps.cfg itself sets it, as PyWPS reads it (environment variables expanded), else ''.

    PyWPS's hard-coded defaults (a temporary directory, an in-memory database)
    do not count: the cleanup never guesses where job files are.
    """
    from pywps import configuration as pywps_config

    if not own.has_option(section, key) or pywps_config.CONFIG is None:
        return ""
    return str(pywps_config.CONFIG.get(section, key))


def _root(value: str, what: str, cfgfile: str) -> Path:
    value = value.strip()
    if not value:
        raise CleanupError(f"{what} is not set in {cfgfile}; refusing to guess where job files are")
    if not os.path.isabs(value):
        raise CleanupError(f"{what} = {value!r} must be an absolute path")
    real = os.path.realpath(value)
    if not os.path.isdir(real):
        raise CleanupError(f"{what} = {value!r} is not a directory")
    if real == os.path.dirname(real):
        raise CleanupError(f"{what} = {value!r} is the file system root")
    return Path(real)


def load_config(cfgfile: str | None) -> Config:
    """Load pywps.cfg (``cfgfile`` or ``$PYWPS_CFG``) and read what the cleanup needs."""
    cfgfile = cfgfile or os.environ.get("PYWPS_CFG") or ""
    if not cfgfile:
        raise CleanupError("no configuration: pass --config or set PYWPS_CFG")
    cfgfile = os.path.abspath(cfgfile)
    if not os.path.isfile(cfgfile) or not os.access(cfgfile, os.R_OK):
        raise CleanupError(f"configuration {cfgfile} does not exist or is not readable")
    # PyWPS also reads $PYWPS_CFG, after the files it is given: make both the same file.
    os.environ["PYWPS_CFG"] = cfgfile
    from pywps import configuration as pywps_config

    try:
        own = configparser.RawConfigParser(default_section="\0")
        own.read(cfgfile, encoding="utf-8")
        pywps_config.load_configuration([cfgfile])
        outputpath_value = _value(own, "server", "outputpath")
        workdir_value = _value(own, "server", "workdir")
        log_dir_value = _value(own, "gridengine", "log_dir").strip()
        database = _value(own, "logging", "database").strip()
        prefix = str(pywps_config.get_config_value("logging", "prefix") or "")
    except configparser.Error as e:
        raise CleanupError(f"configuration {cfgfile}: {str(e).splitlines()[0]}") from None
    outputpath = _root(outputpath_value, "[server] outputpath", cfgfile)
    workdir = _root(workdir_value, "[server] workdir", cfgfile)
    log_dir = _root(log_dir_value, "[gridengine] log_dir", cfgfile) if log_dir_value else None
    if not database or ":memory:" in database:
        raise CleanupError(f"[logging] database is not set in {cfgfile} (or is an in-memory database)")
    if not re.match(r"^[A-Za-z0-9_]*$", prefix):
        raise CleanupError(f"[logging] prefix = {prefix!r} is not a table name prefix")
    return Config(Roots(outputpath, workdir, log_dir), database, prefix)


def _safe_url(database: str) -> str:
    try:
        return sa.engine.make_url(database).render_as_string(hide_password=True)
    except Exception:
        return "[logging] database"


def database_error(e: Exception, database: str) -> CleanupError:
    first = (str(e).splitlines() or [type(e).__name__])[0]
    first = first.replace(database, _safe_url(database))
    return CleanupError(f"database error ({_safe_url(database)}): {first}")


# -- the cleanup --------------------------------------------------------------------------------


@dataclass
class Summary:
    jobs: int = 0
    other_requests: int = 0
    orphans: int = 0
    paths: int = 0
    bytes: int = 0
    kept_active: int = 0
    refused: int = 0
    errors: int = 0

    def line(self, days: int, dry_run: bool) -> str:
        verb, freed = ("would remove", "would be freed") if dry_run else ("removed", "freed")
        head = f"{PROG}{' (dry run)' if dry_run else ''}: {verb} {self.jobs} job(s) ended more than {days} day(s) ago"
        return (f"{head}, {self.other_requests} other request row(s), {self.orphans} orphan(s); "
                f"{self.paths} path(s), {self.bytes} bytes {freed}; "
                f"kept {self.kept_active} older job(s) not ended; "
                f"refused {self.refused} path(s); {self.errors} error(s)")


@dataclass
class _Job:
    uuid: str
    request: sa.Row | None = None
    gridjob: sa.Row | None = None
    stored: bool = False
    paths: list[Path] = field(default_factory=list)


def _chunks(items: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class Cleanup:
    """One cleanup pass over the database and the three directories."""

    def __init__(self, engine: Engine, prefix: str, roots: Roots, days: int, *, dry_run: bool = False,
                 out: Callable[[str], None] | None = None, err: Callable[[str], None] | None = None,
                 now_local: dt.datetime | None = None, now_utc: dt.datetime | None = None,
                 now_epoch: float | None = None) -> None:
        self.engine = engine
        self.roots = roots
        self.days = days
        self.dry_run = dry_run
        self.verbose = False
        self.out = out or (lambda text: print(text, flush=True))
        self.err = err or (lambda text: print(text, file=sys.stderr, flush=True))
        age = dt.timedelta(days=days)
        self.cutoff_local = (now_local or dt.datetime.now()) - age   # PyWPS: datetime.now()
        self.cutoff_utc = (now_utc or utcnow()) - age                 # job table: naive UTC
        self.cutoff_epoch = (now_epoch if now_epoch is not None else time.time()) - age.total_seconds()
        self.summary = Summary()

        metadata = sa.MetaData()
        inspector = sa.inspect(engine)
        names = {"requests": f"{prefix}requests", "stored": f"{prefix}stored_requests",
                 "jobs": f"{prefix}gridengine_jobs"}
        if not inspector.has_table(names["requests"]):
            raise CleanupError(f"table {names['requests']} not found: wrong [logging] database or prefix, "
                               "or the service has not answered a request yet")
        self.requests = sa.Table(
            names["requests"], metadata,
            sa.Column("uuid", sa.String(255), primary_key=True),
            sa.Column("pid", sa.Integer),
            sa.Column("operation", sa.String(30)),
            sa.Column("time_start", sa.DateTime),
            sa.Column("time_end", sa.DateTime),
            sa.Column("status", sa.Integer),
        )
        self.stored = (sa.Table(names["stored"], metadata, sa.Column("uuid", sa.String(255), primary_key=True))
                       if inspector.has_table(names["stored"]) else None)
        # The app creates its table on the first job handed to Grid Engine; never in local mode.
        self.jobs = _jobs_table(metadata, prefix) if inspector.has_table(names["jobs"]) else None

    # -- reporting ------------------------------------------------------------------------

    def _note(self, text: str) -> None:
        if self.dry_run or self.verbose:
            self.out(("would delete " if self.dry_run else "deleted ") + text)

    def _refuse(self, what: str, value: object, root: Path) -> None:
        self.summary.refused += 1
        self.err(f"{PROG}: refused {what} {value!r}: not a direct child of {root}")

    # -- deleting -------------------------------------------------------------------------

    def _delete_path(self, path: Path) -> bool:
        """Delete (or list) one checked path; False if that failed."""
        st = _lstat(path)
        if st is None:
            return True
        _, size = tree_usage(path)
        if not self.dry_run:
            try:
                if not remove(path):
                    return True
            except OSError as e:
                self.summary.errors += 1
                self.err(f"{PROG}: could not delete {path}: {e.strerror or e}")
                return False
        self.summary.paths += 1
        self.summary.bytes += size
        self._note(f"{path} ({size} bytes)")
        return True

    # -- ended jobs -----------------------------------------------------------------------

    def _request_ended(self, row: sa.Row | None) -> bool:
        return row is None or (row.status in PYWPS_FINAL and row.time_end is not None
                               and row.time_end < self.cutoff_local)

    def _gridjob_ended(self, row: sa.Row | None) -> bool:
        return row is None or (row.state in FINAL_STATES and row.finished_at is not None
                               and row.finished_at < self.cutoff_utc)

    def _candidates(self, conn: sa.Connection) -> list[str]:
        r = self.requests
        found = set(conn.execute(
            sa.select(r.c.uuid).where(sa.func.lower(r.c.operation) == "execute", r.c.status.in_(PYWPS_FINAL),
                                      r.c.time_end < self.cutoff_local)).scalars())
        if self.jobs is not None:
            j = self.jobs
            found.update(conn.execute(
                sa.select(j.c.uuid).where(j.c.state.in_(FINAL_STATES), j.c.finished_at < self.cutoff_utc)).scalars())
        return sorted(found)

    def _load(self, conn: sa.Connection, uuids: Sequence[str]) -> list[_Job]:
        jobs = {uuid: _Job(uuid) for uuid in uuids}
        for row in conn.execute(sa.select(self.requests).where(self.requests.c.uuid.in_(uuids))):
            jobs[row.uuid].request = row
        if self.jobs is not None:
            for row in conn.execute(sa.select(self.jobs).where(self.jobs.c.uuid.in_(uuids))):
                jobs[row.uuid].gridjob = row
        if self.stored is not None:
            for uuid in conn.execute(sa.select(self.stored.c.uuid).where(self.stored.c.uuid.in_(uuids))).scalars():
                jobs[uuid].stored = True
        return list(jobs.values())

    def _job_paths(self, job: _Job) -> list[Path] | None:
        """Checked paths of an ended job; None when one was refused (the job is then left as it is)."""
        roots = self.roots
        if not SAFE_NAME_RE.match(job.uuid):
            self._refuse("job uuid", job.uuid, roots.outputpath)
            return None
        wanted: list[tuple[Path, str]] = [
            (roots.outputpath, os.path.join(roots.outputpath, f"{job.uuid}.xml")),
            (roots.outputpath, os.path.join(roots.outputpath, job.uuid)),
        ]
        if roots.log_dir is not None:
            wanted += [(roots.log_dir, os.path.join(roots.log_dir, f"{job.uuid}.{ext}")) for ext in ("out", "err")]
        paths = []
        for root, candidate in wanted:
            path = contained(root, candidate)
            if path is None:
                self._refuse("path", candidate, root)
                return None
            paths.append(path)
        workdir = job.gridjob.workdir if job.gridjob is not None else None
        if workdir:
            path = contained(roots.workdir, workdir)
            if path is None or not path.name.startswith(WORKDIR_PREFIX):
                # Not ours to delete; the rest of the job still goes.
                self._refuse(f"work directory of job {job.uuid}", workdir, roots.workdir)
            else:
                paths.append(path)
        return paths

    def _delete_rows(self, conn: sa.Connection, job: _Job) -> None:
        r = self.requests
        # Compare-and-delete: a row that changed since it was read stays.
        conn.execute(sa.delete(r).where(r.c.uuid == job.uuid, r.c.status.in_(PYWPS_FINAL),
                                        r.c.time_end < self.cutoff_local))
        if self.jobs is not None:
            j = self.jobs
            conn.execute(sa.delete(j).where(j.c.uuid == job.uuid, j.c.state.in_(FINAL_STATES),
                                            j.c.finished_at < self.cutoff_utc))

    def _old_not_ended(self, conn: sa.Connection) -> set[str]:
        """Jobs started before the cutoff that some row still has as accepted/started/queued."""
        r = self.requests
        found = set(conn.execute(
            sa.select(r.c.uuid).where(sa.func.lower(r.c.operation) == "execute",
                                      sa.or_(r.c.status.is_(None), r.c.status.not_in(PYWPS_FINAL)),
                                      r.c.time_start < self.cutoff_local)).scalars())
        if self.jobs is not None:
            j = self.jobs
            found.update(conn.execute(
                sa.select(j.c.uuid).where(j.c.state.not_in(FINAL_STATES), j.c.created_at < self.cutoff_utc)).scalars())
        return found

    def ended_jobs(self) -> None:
        with self.engine.connect() as conn:
            candidates = self._candidates(conn)
            kept = self._old_not_ended(conn)
        for chunk in _chunks(candidates):
            with self.engine.connect() as conn:
                jobs = self._load(conn, chunk)
            for job in jobs:
                if job.stored or not self._request_ended(job.request) or not self._gridjob_ended(job.gridjob):
                    kept.add(job.uuid)
                    continue
                paths = self._job_paths(job)
                if paths is None:
                    continue
                ok = all([self._delete_path(path) for path in paths])
                if not ok:
                    continue  # rows stay: the next run tries again
                self._note(f"database rows of job {job.uuid}")
                if not self.dry_run:
                    with self.engine.begin() as conn:
                        self._delete_rows(conn, job)
                self.summary.jobs += 1
        self.summary.kept_active = len(kept)

    def other_requests(self) -> None:
        """PyWPS rows of GetCapabilities/DescribeProcess (no files) that ended before the cutoff."""
        r = self.requests
        where = [sa.func.lower(r.c.operation) != "execute", r.c.status.in_(PYWPS_FINAL),
                 r.c.time_end < self.cutoff_local]
        if self.stored is not None:
            where.append(~r.c.uuid.in_(sa.select(self.stored.c.uuid)))
        if self.jobs is not None:
            where.append(~r.c.uuid.in_(sa.select(self.jobs.c.uuid)))
        if self.dry_run:
            with self.engine.connect() as conn:
                count = conn.execute(sa.select(sa.func.count()).select_from(r).where(*where)).scalar_one()
        else:
            with self.engine.begin() as conn:
                count = conn.execute(sa.delete(r).where(*where)).rowcount
        self.summary.other_requests += count

    # -- orphans --------------------------------------------------------------------------

    def _known(self, uuids: Iterable[str]) -> set[str]:
        """Which of ``uuids`` have a row in any of the tables."""
        uuids = sorted(set(uuids))
        known: set[str] = set()
        tables = [t for t in (self.requests, self.jobs, self.stored) if t is not None]
        with self.engine.connect() as conn:
            for chunk in _chunks(uuids):
                for table in tables:
                    known.update(conn.execute(sa.select(table.c.uuid).where(table.c.uuid.in_(chunk))).scalars())
        return known

    def _referenced_workdirs(self) -> set[str]:
        """Names of the work directories (under ``workdir``) that job rows point to."""
        if self.jobs is None:
            return set()
        with self.engine.connect() as conn:
            values = conn.execute(sa.select(self.jobs.c.workdir).where(self.jobs.c.workdir.is_not(None))).scalars()
            names = set()
            for value in values:
                path = contained(self.roots.workdir, value)
                if path is not None:
                    names.add(path.name)
        return names

    def _old(self, path: Path, cutoff: float | None = None) -> bool:
        newest, _ = tree_usage(path)
        return newest < (self.cutoff_epoch if cutoff is None else cutoff)

    def _workdir_cutoff(self) -> float:
        """Cutoff for unreferenced work directories.

        Jobs PyWPS runs itself (local mode; synchronous requests in any mode)
        have a work directory no table records. While such a request is open
        (not Succeeded/Failed) and its process is alive on this host, no work
        directory last changed after it started (less an hour of clock slack)
        is an orphan. A dead pid means the request crashed; it does not count.
        """
        r = self.requests
        query = sa.select(r.c.pid, r.c.time_start).where(
            sa.func.lower(r.c.operation) == "execute",
            sa.or_(r.c.status.is_(None), r.c.status.not_in(PYWPS_FINAL)))
        if self.jobs is not None:
            query = query.where(~r.c.uuid.in_(sa.select(self.jobs.c.uuid)))
        cutoff = self.cutoff_epoch
        with self.engine.connect() as conn:
            for pid, started in conn.execute(query):
                if started is None or not _alive(pid):
                    continue
                cutoff = min(cutoff, started.timestamp() - 3600)  # naive local time, as PyWPS wrote it
        return cutoff

    @staticmethod
    def _entries(root: Path) -> list[os.DirEntry[str]]:
        with os.scandir(root) as it:
            return list(it)

    def orphans(self) -> None:
        roots = self.roots
        by_uuid: list[tuple[str, Path]] = []   # deleted only when no row knows the uuid
        unconditional: list[Path] = []         # interrupted status writes: seconds old at most when alive

        for entry in self._entries(roots.outputpath):
            name = entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            tmp = TMP_STATUS_RE.match(name)
            if tmp and not is_dir:
                unconditional.append(Path(roots.outputpath, name))
            elif is_dir and UUID_RE.match(name):
                by_uuid.append((name, Path(roots.outputpath, name)))
            elif not is_dir and name.endswith(".xml") and UUID_RE.match(name[:-4]):
                by_uuid.append((name[:-4], Path(roots.outputpath, name)))
        if roots.log_dir is not None:
            for entry in self._entries(roots.log_dir):
                stem, dot, ext = entry.name.rpartition(".")
                if dot and ext in ("out", "err") and UUID_RE.match(stem) and not entry.is_dir(follow_symlinks=False):
                    by_uuid.append((stem, Path(roots.log_dir, entry.name)))

        old = [(uuid, path) for uuid, path in by_uuid if self._old(path)]
        known = self._known(uuid for uuid, _ in old)
        doomed = [path for uuid, path in old if uuid not in known]
        doomed += [path for path in unconditional if self._old(path)]

        referenced = self._referenced_workdirs()
        workdir_cutoff = self._workdir_cutoff()
        for entry in self._entries(roots.workdir):
            if (entry.name.startswith(WORKDIR_PREFIX) and entry.is_dir(follow_symlinks=False)
                    and entry.name not in referenced):
                path = Path(roots.workdir, entry.name)
                if self._old(path, workdir_cutoff):
                    doomed.append(path)

        for path in doomed:
            root = path.parent
            checked = contained(root, path)
            if checked is None or root not in (roots.outputpath, roots.workdir, roots.log_dir):
                self._refuse("orphan", str(path), root)
                continue
            before = self.summary.paths
            if self._delete_path(checked) and self.summary.paths > before:
                self.summary.orphans += 1

    # -- all of it ------------------------------------------------------------------------

    def run(self) -> Summary:
        self.ended_jobs()
        self.other_requests()
        self.orphans()
        return self.summary


# -- command line -----------------------------------------------------------------------------------


def _days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of days") from None
    if days < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return days


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Delete status documents, outputs, work directories, logs and database rows "
                               "of WPS jobs that ended more than N days ago, and orphans older than N days.")
    parser.add_argument("-c", "--config", help="pywps.cfg to use (default: $PYWPS_CFG)")
    parser.add_argument("--days", type=_days, required=True, metavar="N",
                        help="keep everything of jobs that ended within the last N days (N >= 1)")
    parser.add_argument("-n", "--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    parser.add_argument("-v", "--verbose", action="store_true", help="list what is deleted")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    database = ""
    try:
        config = load_config(args.config)
        database = config.database
        try:
            engine = sa.create_engine(database, poolclass=sa.pool.NullPool)
            cleanup = Cleanup(engine, config.prefix, config.roots, args.days, dry_run=args.dry_run)
            cleanup.verbose = args.verbose
            summary = cleanup.run()
        except sa.exc.SQLAlchemyError as e:
            raise database_error(e, database) from None
        except ImportError as e:  # database driver missing
            raise database_error(e, database) from None
    except CleanupError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a root directory unreadable, say
        print(f"{PROG}: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    print(summary.line(args.days, args.dry_run))
    return 1 if summary.errors else 0


if __name__ == "__main__":
    sys.exit(main())
