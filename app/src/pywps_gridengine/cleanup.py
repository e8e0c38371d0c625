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
* then its rows in ``<prefix>requests`` and ``<prefix>gridengine_jobs`` (and its
  kept document), for :data:`CHUNK` jobs at a time in one transaction that
  deletes a row only if it still says ended before the cutoff. Rows are kept
  when a file could not be deleted, so the next run retries; a chunk the
  database fails is reported and the other chunks go on.

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
both are compared with one cutoff, taken from one UTC clock
(:class:`~.jobs.Cutoff`). Every query is the job store's (:mod:`.jobs`), every
path check is :mod:`.paths`' (through :class:`Children`, which resolves each
root once per pass); this module is the policy.

Exit status: 0 done (a file already gone is not an error), 1 some paths, or
some chunks' rows, could not be deleted (see stderr), 2 bad configuration or
database error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from .config import AppConfig, ConfigError
from .jobs import CleanupRows, Cutoff, JobStore, MissingTable
from .paths import Roots, alive, contained, lstat, remove, status_document, tree_usage

PROG = "pywps-gridengine-cleanup"

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# What a uuid read from the database may look like before it is used in a file name.
SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
# atomic_write's temporary file: "." + "<uuid>.xml" + "." + random + ".tmp"
TMP_STATUS_RE = re.compile(r"^\.(?P<uuid>[^/]+)\.xml\.[^./]+\.tmp$")
WORKDIR_PREFIX = "pywps_process_"
CHUNK = 500


class CleanupError(Exception):
    """Bad configuration or database trouble: reported in one line, exit 2."""


# -- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    roots: Roots
    database: str
    prefix: str


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


def cleanup_config(config: AppConfig) -> Config:
    """What the clean-up needs from the loaded configuration, checked.

    Only values pywps.cfg itself sets count: PyWPS's built-in defaults (a
    temporary directory, an in-memory database) are never taken for the place
    where job files are.
    """
    cfgfile = config.cfgfile

    def own(section: str, key: str, value: str) -> str:
        return value if config.is_set(section, key) else ""

    outputpath = _root(own("server", "outputpath", config.outputpath), "[server] outputpath", cfgfile)
    workdir = _root(own("server", "workdir", config.workdir), "[server] workdir", cfgfile)
    log_dir_value = own("gridengine", "log_dir", config.log_dir)
    log_dir = _root(log_dir_value, "[gridengine] log_dir", cfgfile) if log_dir_value else None
    database = own("logging", "database", config.database)
    if not database or ":memory:" in database:
        raise CleanupError(f"[logging] database is not set in {cfgfile} (or is an in-memory database)")
    if not re.match(r"^[A-Za-z0-9_]*$", config.prefix):
        raise CleanupError(f"[logging] prefix = {config.prefix!r} is not a table name prefix")
    return Config(Roots(outputpath, workdir, log_dir), database, config.prefix)


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


def _chunks(items: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _first_line(e: BaseException) -> str:
    """One line of a database error: the driver's message, without the statement and its parameters."""
    orig = getattr(e, "orig", None)
    return (str(orig or e).strip().splitlines() or [type(e).__name__])[0]


class Children:
    """:func:`~.paths.contained` for many candidates under one root, the root resolved once.

    :func:`~.paths.contained` resolves both the candidate's parent and the root
    on every call: about 50 µs, 5 s for the 100,000 work directories a large
    job table records. A candidate whose normalised parent is, as a string,
    the root as configured or as resolved when the pass started is a direct
    child of it without asking the file system (the parent then is the root,
    whatever links lead to it), so that answer is the same as
    :func:`~.paths.contained`'s. Any other candidate (a parent spelled through a
    symbolic link, say) gets the full check, its parent resolved: every call
    for a path to delete (:meth:`child`); remembered per parent only where the
    answer protects (:meth:`name`: a work directory a row refers to is kept).
    The last component is never resolved: a symbolic link is judged, and
    removed, as the link itself.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.real = os.path.realpath(root)
        self._spellings = {os.fspath(root), self.real}
        self._parents: dict[str, bool] = {}

    def child(self, candidate: str | os.PathLike[str]) -> Path | None:
        """``candidate`` as a direct child of the root, or None (as :func:`~.paths.contained`)."""
        text = os.fspath(candidate)
        if not text or "\0" in text or not os.path.isabs(text):
            return None
        parent, name = os.path.split(os.path.normpath(text))  # absolute: abspath is normpath, no cwd
        if name in ("", ".", ".."):
            return None
        if parent in self._spellings:
            return Path(self.real, name)
        return contained(self.root, text)

    def name(self, candidate: str) -> str | None:
        """The name of ``candidate`` if it is a direct child of the root, each other parent resolved once.

        For the protecting answer only (a name found keeps a directory, never
        deletes one): a parent's resolution is remembered for the pass, and no
        :class:`~pathlib.Path` is made (100,000 calls).
        """
        if not candidate or "\0" in candidate or not os.path.isabs(candidate):
            return None
        parent, name = os.path.split(os.path.normpath(candidate))
        if name in ("", ".", ".."):
            return None
        if parent in self._spellings:
            return name
        inside = self._parents.get(parent)
        if inside is None:
            inside = self._parents[parent] = os.path.realpath(parent) == self.real
        return name if inside else None


class Cleanup:
    """One cleanup pass: the policy over the job store's rows and the three directories."""

    def __init__(self, store: JobStore, roots: Roots, days: int, *, dry_run: bool = False,
                 out: Callable[[str], None] | None = None, err: Callable[[str], None] | None = None,
                 now: dt.datetime | None = None, chunk: int = CHUNK) -> None:
        self.store = store
        self.roots = roots
        self.chunk = chunk
        # Each root resolved once per pass (Children), not once per path.
        self.children = {root: Children(root) for root in (roots.outputpath, roots.workdir, roots.log_dir)
                         if root is not None}
        self.days = days
        self.dry_run = dry_run
        self.verbose = False
        self.out = out or (lambda text: print(text, flush=True))
        self.err = err or (lambda text: print(text, file=sys.stderr, flush=True))
        # One moment, from the database's clock (the job table's), seen on each table's clock.
        self.cutoff = Cutoff.ago(dt.timedelta(days=days), now or store.db_now())
        self.summary = Summary()
        try:
            store.require_requests_table()
        except MissingTable as e:
            raise CleanupError(f"table {e} not found: wrong [logging] database or prefix, "
                               "or the service has not answered a request yet") from None

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
        if lstat(path) is None:
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

    def _job_paths(self, job: CleanupRows) -> list[Path] | None:
        """Checked paths of an ended job; None when one was refused (the job is then left as it is)."""
        roots = self.roots
        if not SAFE_NAME_RE.match(job.uuid):
            self._refuse("job uuid", job.uuid, roots.outputpath)
            return None
        wanted: list[tuple[Path, str]] = [
            (roots.outputpath, status_document(roots.outputpath, job.uuid)),
            (roots.outputpath, os.path.join(roots.outputpath, job.uuid)),
        ]
        if roots.log_dir is not None:
            wanted += [(roots.log_dir, os.path.join(roots.log_dir, f"{job.uuid}.{ext}")) for ext in ("out", "err")]
        paths = []
        for root, candidate in wanted:
            path = self.children[root].child(candidate)
            if path is None:
                self._refuse("path", candidate, root)
                return None
            paths.append(path)
        workdir = job.job.workdir if job.job is not None else None
        if workdir:
            path = self.children[roots.workdir].child(workdir)
            if path is None or not path.name.startswith(WORKDIR_PREFIX):
                # Not ours to delete; the rest of the job still goes.
                self._refuse(f"work directory of job {job.uuid}", workdir, roots.workdir)
            else:
                paths.append(path)
        return paths

    def ended_jobs(self) -> None:
        """Files, then rows, of the jobs ended before the cutoff, a chunk of jobs at a time.

        Order: a job's files go first, its rows after, as one compare-and-delete
        per chunk (:meth:`~.jobs.JobStore.delete_ended`, one transaction for up
        to :data:`CHUNK` jobs). A job whose file could not be deleted keeps its
        rows, and a crash or a failed chunk between the two leaves rows whose
        files are gone, never files no row knows of: the next pass finds those
        rows again and finishes them (a file already gone is not an error). A
        row that is no longer ended when its chunk is deleted stays, with the
        job's other rows (its files are gone by then, as they were before rows
        were deleted a chunk at a time). A chunk the database fails is reported
        and counted as an error; the chunks before and after it are done.
        """
        store, cutoff = self.store, self.cutoff
        candidates = store.ended_candidates(cutoff)
        kept = store.not_ended_since(cutoff)
        for chunk in _chunks(candidates, self.chunk):
            try:
                rows = store.cleanup_rows(chunk)
            except sa.exc.SQLAlchemyError as e:
                self._chunk_failed("read", chunk, e)
                continue
            done: list[str] = []  # files gone: its rows may go
            for job in rows:
                if job.stored or not store.request_ended(job.request, cutoff) or not store.job_ended(job.job, cutoff):
                    kept.add(job.uuid)
                    continue
                paths = self._job_paths(job)
                if paths is None:
                    continue
                ok = all([self._delete_path(path) for path in paths])
                if ok:
                    done.append(job.uuid)
                # else: rows stay, the next run tries again
            if not done:
                continue
            if self.dry_run:
                stayed: set[str] = set()
            else:
                try:
                    stayed = store.delete_ended(done, cutoff)
                except sa.exc.SQLAlchemyError as e:
                    self._chunk_failed("delete the rows of", done, e)
                    continue
            for uuid in done:
                if uuid in stayed:  # a row changed since it was read: not ended any more
                    kept.add(uuid)
                    continue
                self._note(f"database rows of job {uuid}")
                self.summary.jobs += 1
        self.summary.kept_active = len(kept)

    def _chunk_failed(self, what: str, uuids: Sequence[str], e: sa.exc.SQLAlchemyError) -> None:
        """A chunk the database failed: one line, counted as an error; its rows stay for the next run."""
        self.summary.errors += 1
        self.err(f"{PROG}: could not {what} {len(uuids)} job(s) ({uuids[0]} .. {uuids[-1]}), "
                 f"the next run retries: database error: {_first_line(e)}")

    def other_requests(self) -> None:
        """PyWPS rows of GetCapabilities/DescribeProcess (no files) that ended before the cutoff."""
        if self.dry_run:
            self.summary.other_requests += self.store.count_other_requests(self.cutoff)
        else:
            self.summary.other_requests += self.store.delete_other_requests(self.cutoff)

    # -- orphans --------------------------------------------------------------------------

    def _referenced_workdirs(self) -> set[str]:
        """Names of the work directories (under ``workdir``) that job rows point to."""
        children = self.children[self.roots.workdir]
        names = set()
        for value in self.store.workdirs():
            # Remembering a parent's answer is safe here: a name found keeps a directory, never deletes one.
            name = children.name(value)
            if name is not None:
                names.add(name)
        return names

    def _old(self, path: Path, cutoff: float | None = None) -> bool:
        newest, _ = tree_usage(path)
        return newest < (self.cutoff.epoch if cutoff is None else cutoff)

    def _workdir_cutoff(self) -> float:
        """Cutoff for unreferenced work directories.

        Jobs PyWPS runs itself (local mode; synchronous requests in any mode)
        have a work directory no table records. While such a request is open
        (not Succeeded/Failed) and its process is alive on this host, no work
        directory last changed after it started (less an hour of clock slack)
        is an orphan. A dead pid means the request crashed; it does not count.
        """
        cutoff = self.cutoff.epoch
        for pid, started in self.store.open_local_requests():
            if started is None or not alive(pid):
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
        known = self.store.known(uuid for uuid, _ in old)
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
            children = self.children.get(root)
            checked = children.child(path) if children is not None else None
            if checked is None:
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


def open_store(config: Config) -> JobStore:
    """The job store of one pass, never creating a table, on an engine that keeps its connection.

    Every store call takes a connection, and an ended job's compare-and-delete
    is a transaction of its own: without a pool (NullPool) each of them opened
    a new connection, with TLS and authentication, and a pass deleting 10,000
    jobs spent almost all its time connecting (``./pwg bench``, figure rows).
    The pool's connections close when the process ends.
    """
    return JobStore(sa.create_engine(config.database), config.prefix, create_table=False)


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
    from . import config as app_config

    args = parse_args(argv)
    database = ""
    try:
        if not (args.config or os.environ.get("PYWPS_CFG")):
            raise CleanupError("no configuration: pass --config or set PYWPS_CFG")
        try:
            config = cleanup_config(app_config.load(args.config))
        except ConfigError as e:
            raise CleanupError(str(e)) from None
        database = config.database
        try:
            store = open_store(config)
            cleanup = Cleanup(store, config.roots, args.days, dry_run=args.dry_run)
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
