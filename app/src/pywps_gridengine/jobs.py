"""The job store: the one owner of every SQL statement the app runs.

PyWPS keeps one row per request in ``<prefix>requests`` (status, percentage,
message) but nothing about the batch system. The app's ``<prefix>gridengine_jobs``
table adds, per WPS job handed to Grid Engine: the SGE job id and name, the
state as the app sees it (:class:`JobState`), the exec host and a heartbeat of
the launcher, so the reconciler can find jobs that Grid Engine lost and fail
them. Both live in the same database (``[logging] database``): PostgreSQL in
production, SQLite in tests.

The job row decides. Every state change is a compare-and-set on it
(:meth:`JobStore.record`): a row that reached a final state is never moved
again, and a move the row refuses changes nothing else either. PyWPS's
requests row of the same job follows the job row in the same transaction, so
the two never disagree. That keeps a reconciler's "failed" from being
overwritten by a launcher that was presumed lost but comes back, and the
other way round.

The clean-up's queries (:meth:`JobStore.ended_candidates` and the ones after
it) live here too, so no other module knows a table or a status number.

Clocks: the job table is stamped by the database's own clock, in UTC
(:class:`utc_now`, evaluated by the database server), and the reconciler
judges ages by the same clock (:meth:`JobStore.db_now`): heartbeats written
on an exec host and judged on the web host never compare two machines'
clocks, so skew between hosts cannot fail a job. PyWPS stamps its requests
rows in the writing host's local time (``datetime.now()``); the clean-up
derives both of its cutoffs from one UTC moment (:class:`Cutoff`).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

# PyWPS's logger, which its configuration ([logging]) sends to the service's log.
LOGGER = logging.getLogger("PYWPS")


class JobState(enum.StrEnum):
    """States of the job row: accepted → started → succeeded | failed | dismissed.

    Dismissed: a client (its owner, or an operator) asked for the job to be
    stopped (:mod:`.jobcontrol`), from Accepted or Started, through the same
    compare-and-set as every other move; the Grid Engine job is deleted after.
    """

    ACCEPTED = "accepted"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DISMISSED = "dismissed"

    @property
    def final(self) -> bool:
        return self in FINAL_STATES


ACCEPTED = JobState.ACCEPTED
STARTED = JobState.STARTED
SUCCEEDED = JobState.SUCCEEDED
FAILED = JobState.FAILED
DISMISSED = JobState.DISMISSED
ACTIVE_STATES = (ACCEPTED, STARTED)
FINAL_STATES = (SUCCEEDED, FAILED, DISMISSED)

# Which states a row may be in for a move to each state to be accepted.
_ALLOWED_FROM: dict[JobState, tuple[JobState, ...]] = {
    ACCEPTED: (ACCEPTED,),              # never back to Accepted once started
    STARTED: (ACCEPTED, STARTED),       # started, then progress updates
    SUCCEEDED: ACTIVE_STATES,
    FAILED: ACTIVE_STATES,
    DISMISSED: ACTIVE_STATES,
}


class RequestStatus(enum.IntEnum):
    """PyWPS's status numbers in its requests table (``pywps.response.status.WPS_STATUS``).

    Named here so no module compares bare numbers; ``tests/test_compat.py``
    pins them to PyWPS's own values.
    """

    UNKNOWN = 0
    ACCEPTED = 1
    STARTED = 2
    PAUSED = 3
    SUCCEEDED = 4
    FAILED = 5


REQUEST_FINAL = (RequestStatus.SUCCEEDED, RequestStatus.FAILED)
STATE_OF_STATUS = {
    RequestStatus.ACCEPTED: ACCEPTED,
    RequestStatus.STARTED: STARTED,
    RequestStatus.SUCCEEDED: SUCCEEDED,
    RequestStatus.FAILED: FAILED,
}
# PyWPS's requests table has no dismissed status (nor has WPS 1.0): a dismissed job's row there is Failed.
STATUS_OF_STATE = {**{state: status for status, state in STATE_OF_STATUS.items()}, DISMISSED: RequestStatus.FAILED}


def utcnow() -> dt.datetime:
    """Naive UTC timestamp (both SQLite and PostgreSQL ``timestamp`` columns)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class utc_now(FunctionElement[dt.datetime]):  # noqa: N801 - an SQL function, named as SQL names them
    """The database server's current time in UTC, as a naive timestamp (SQLAlchemy's documented recipe)."""

    type = sa.DateTime()
    inherit_cache = True


@compiles(utc_now, "postgresql")
def _utc_now_postgresql(element: utc_now, compiler: Any, **kw: Any) -> str:
    return "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')"


@compiles(utc_now, "sqlite")
def _utc_now_sqlite(element: utc_now, compiler: Any, **kw: Any) -> str:
    # The format SQLAlchemy's SQLite DateTime reads back, with microseconds (always UTC).
    return "strftime('%Y-%m-%d %H:%M:%f000', 'now')"


@compiles(utc_now)
def _utc_now_default(element: utc_now, compiler: Any, **kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


Stamp = dt.datetime | utc_now


def local_of(utc: dt.datetime) -> dt.datetime:
    """The naive local time (as PyWPS stamps its rows) of a naive UTC time."""
    return utc.replace(tzinfo=dt.UTC).astimezone().replace(tzinfo=None)


@dataclass(frozen=True)
class Cutoff:
    """One moment, on the clock of each table: UTC for the job table, local time for PyWPS's."""

    utc: dt.datetime

    @property
    def local(self) -> dt.datetime:
        return local_of(self.utc)

    @property
    def epoch(self) -> float:
        return self.utc.replace(tzinfo=dt.UTC).timestamp()

    @classmethod
    def ago(cls, age: dt.timedelta, now: dt.datetime | None = None) -> Cutoff:
        return cls((now or utcnow()) - age)


def _jobs_table(metadata: sa.MetaData, prefix: str) -> sa.Table:
    return sa.Table(
        f"{prefix}gridengine_jobs",
        metadata,
        sa.Column("uuid", sa.String(255), primary_key=True),
        sa.Column("identifier", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("sge_job_id", sa.String(64), nullable=True),
        sa.Column("job_name", sa.String(255), nullable=True),
        sa.Column("native_specification", sa.Text, nullable=True),
        sa.Column("workdir", sa.Text, nullable=True),
        sa.Column("exec_host", sa.String(255), nullable=True),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("submitted_at", sa.DateTime, nullable=True),
        sa.Column("started_at", sa.DateTime, nullable=True),
        sa.Column("heartbeat_at", sa.DateTime, nullable=True),
        sa.Column("gone_since", sa.DateTime, nullable=True),
        sa.Column("finished_at", sa.DateTime, nullable=True),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        # What the job used (Usage): from Grid Engine's accounting when the reconciler
        # ends a job, from the launcher's own measurement when the job ends itself.
        *_usage_columns(),
        # Admission control: who started the job, and the index of the per-client count (JobStore.active_counts).
        sa.Column("client", sa.String(64), nullable=True),
        sa.Index(f"ix_{prefix}gridengine_jobs_client_state", "client", "state"),
        # How often the reconciler submitted the job again after Grid Engine lost it before it
        # started (JobStore.resubmitted); None: never.
        sa.Column("resubmits", sa.Integer, nullable=True),
        # Who owns the job (the identity the front reports, see jobcontrol.py); None without identity.
        sa.Column("owner", sa.String(255), nullable=True),
        # The job list (JobStore.find): newest first, (created_at, uuid) descending, read backwards
        # along an index, with no filter, with a state and with a process identifier, so a page of
        # a large table is an index range scan and never a scan and sort of the whole table.
        *_list_indexes(prefix),
        # The metrics' look at the jobs that started or ended lately (JobStore.timings_since) and the
        # reconciler's at the recently failed and succeeded ones: ranges on these, never a scan.
        sa.Index(f"ix_{prefix}gridengine_jobs_started", "started_at"),
        sa.Index(f"ix_{prefix}gridengine_jobs_finished", "finished_at"),
    )


def _list_indexes(prefix: str) -> list[sa.Index]:
    """The indexes of :meth:`JobStore.find`'s order, each led by the column a filter fixes (if any).

    The order's columns end each of them, so with the filter's equality the
    index yields the rows already ordered, and a page cursor
    (``(created_at, uuid) < (...)``) is a range condition on the index.
    Created on an existing table too (:meth:`JobStore._add_missing_indexes`).
    """
    name = f"ix_{prefix}gridengine_jobs"
    return [
        sa.Index(f"{name}_created", "created_at", "uuid"),
        sa.Index(f"{name}_state_created", "state", "created_at", "uuid"),
        sa.Index(f"{name}_identifier_created", "identifier", "created_at", "uuid"),
        sa.Index(f"{name}_owner_created", "owner", "created_at", "uuid"),
    ]


def _documents_table(metadata: sa.MetaData, prefix: str) -> sa.Table:
    """The final status document of each succeeded job, kept beside its row (see :meth:`JobStore.record`).

    A succeeded document holds the job's outputs, which nothing else stores
    (a failed one is rebuilt from the row's message): the digest lets the
    reconciler's repair pass see a document that disagrees, the text lets it
    write the document again. Written in the transaction that makes the row
    final, so a kept document exists exactly when the row is Succeeded.
    """
    return sa.Table(
        f"{prefix}gridengine_documents",
        metadata,
        sa.Column("uuid", sa.String(255), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        # None when the document is larger than KEEP_DOCUMENT_BYTES: then a disagreeing one is reported only.
        sa.Column("document", sa.Text, nullable=True),
    )


#: Largest status document kept whole (bytes, UTF-8); a larger one keeps its digest only.
KEEP_DOCUMENT_BYTES = 4 * 2**20


@dataclass(frozen=True)
class KeptDocument:
    """The digest of a succeeded job's final status document, and whether its text is kept."""

    uuid: str
    sha256: str
    size: int
    kept: bool


def _usage_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("exit_status", sa.Integer, nullable=True),
        sa.Column("wallclock", sa.Float, nullable=True),
        sa.Column("cpu", sa.Float, nullable=True),
        sa.Column("peak_memory", sa.Float, nullable=True),
    ]


@dataclass(frozen=True)
class Usage:
    """What a job used: seconds of wall clock and CPU, peak memory in bytes, where it ran."""

    exec_host: str | None = None
    exit_status: int | None = None
    wallclock: float | None = None
    cpu: float | None = None
    peak_memory: float | None = None

    def values(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items() if value is not None}


def _pywps_tables(metadata: sa.MetaData, prefix: str) -> tuple[sa.Table, sa.Table]:
    """PyWPS's requests and stored-requests tables, under ``prefix``.

    Copied from PyWPS's own models (``pywps.dblog``), not declared again, so
    their columns follow the PyWPS release installed.
    """
    from pywps import dblog

    requests = dblog.ProcessInstance.__table__.to_metadata(metadata, name=f"{prefix}requests")
    stored = dblog.RequestInstance.__table__.to_metadata(metadata, name=f"{prefix}stored_requests")
    return requests, stored


@dataclass(frozen=True)
class JobRecord:
    uuid: str
    identifier: str
    state: str
    sge_job_id: str | None
    job_name: str | None
    native_specification: str | None
    workdir: str | None
    exec_host: str | None
    message: str | None
    created_at: dt.datetime
    submitted_at: dt.datetime | None
    started_at: dt.datetime | None
    heartbeat_at: dt.datetime | None
    gone_since: dt.datetime | None
    finished_at: dt.datetime | None
    updated_at: dt.datetime
    exit_status: int | None = None
    wallclock: float | None = None
    cpu: float | None = None
    peak_memory: float | None = None
    client: str | None = None
    resubmits: int | None = None
    owner: str | None = None

    @property
    def final(self) -> bool:
        return JobState(self.state).final


class PageCursor(NamedTuple):
    """Where a page of :meth:`JobStore.find` ended: the last row's ``created_at`` and ``uuid``.

    The next page is the rows after it in the list's order (keyset paging): it
    costs the same at any depth, and a job created or deleted between two
    pages neither repeats a row nor skips one, which an offset would.
    """

    created_at: dt.datetime
    uuid: str

    @classmethod
    def of(cls, job: JobRecord) -> PageCursor:
        return cls(job.created_at, job.uuid)


@dataclass(frozen=True)
class CleanupRows:
    """What the database holds about one job the clean-up considers."""

    uuid: str
    request: sa.Row[Any] | None
    job: sa.Row[Any] | None
    stored: bool


class LeaderLock:
    """One holder at a time across every host sharing the database (a PostgreSQL advisory lock).

    The lock lives in one session kept open while held; if that session dies
    (database restart), the lock is gone and :meth:`acquire` tries again. On
    a database without advisory locks (SQLite, a single host) every caller leads.
    """

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        # A stable 63-bit key from the name (Python's hash() differs per process).
        self.key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1
        self._conn: sa.Connection | None = None

    def acquire(self) -> bool | None:
        """True: this caller leads; False: another one does; None: the database did not answer."""
        if self.engine.dialect.name != "postgresql":
            return True
        try:
            if self._conn is not None:
                self._conn.execute(sa.text("SELECT 1"))  # still our session?
                self._conn.commit()
                return True
            conn = self.engine.connect()
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar_one()
            conn.commit()
            if got:
                self._conn = conn
                return True
            conn.close()
            return False
        except sa.exc.DBAPIError:
            self.release()
            return None

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()  # ends the session, and with it the lock
            except sa.exc.DBAPIError:
                pass


class MissingTable(LookupError):
    """PyWPS's requests table is not in the database."""


class OverCap(RuntimeError):
    """A new job would take the active jobs past a cap (admission control); nothing was written."""

    def __init__(self, active: int, client_active: int, max_total: int, max_per_client: int) -> None:
        self.active, self.client_active = active, client_active
        self.max_total, self.max_per_client = max_total, max_per_client
        self.per_client = bool(max_per_client) and client_active >= max_per_client
        super().__init__(f"this client has {client_active} active asynchronous jobs, the most allowed per client"
                         f" is {max_per_client}" if self.per_client else
                         f"{active} asynchronous jobs are active, the most allowed is {max_total}")


class JobStore:
    """The job table, PyWPS's request rows of the same jobs, and the clean-up's queries.

    ``create_table=False`` (the clean-up) never creates a table; the store
    then works without the job table where a database has none yet.
    """

    def __init__(self, engine: Engine, prefix: str = "pywps_", *, create_table: bool = True) -> None:
        self.engine = engine
        self.prefix = prefix
        self.metadata = sa.MetaData()
        self.table = _jobs_table(self.metadata, prefix)
        self.requests, self.stored = _pywps_tables(self.metadata, prefix)
        self.documents = _documents_table(self.metadata, prefix)
        if create_table:
            # PyWPS creates its own tables on its first session; creating them here
            # as well (same definitions) lets the store work before PyWPS has run.
            self.metadata.create_all(engine, checkfirst=True)
            self._add_missing_columns()
            self._add_missing_indexes()
        inspector = sa.inspect(engine)
        self.has_jobs_table = create_table or inspector.has_table(self.table.name)
        self._has_stored = inspector.has_table(self.stored.name)
        self._has_documents = create_table or inspector.has_table(self.documents.name)

    @classmethod
    def for_config(cls, config: Any) -> JobStore:
        """The store of ``config``'s database and table prefix, sharing PyWPS's engine (one per process)."""
        key = (config.database, config.prefix)
        store = _STORES.get(key)
        if store is None:
            from pywps import dblog

            session = dblog.get_session()
            try:
                engine = session.get_bind()
            finally:
                session.close()
            store = _STORES[key] = cls(engine, config.prefix)  # type: ignore[arg-type]
        return store

    def _add_missing_columns(self) -> None:
        """Bring a job table created by an older release up to date.

        Only nullable columns are ever added to this table, so an ``ALTER
        TABLE ... ADD COLUMN`` per missing column is the whole migration; a
        migration framework (Alembic) would be one more dependency on every
        web and exec host for that.
        """
        have = {column["name"] for column in sa.inspect(self.engine).get_columns(self.table.name)}
        missing = [column for column in self.table.columns if column.name not in have]
        if not missing:
            return
        preparer = self.engine.dialect.identifier_preparer
        with self.engine.begin() as conn:
            for column in missing:
                kind = column.type.compile(dialect=self.engine.dialect)
                conn.execute(sa.text(f"ALTER TABLE {preparer.quote(self.table.name)} "
                                     f"ADD COLUMN {preparer.quote(column.name)} {kind}"))

    def _add_missing_indexes(self) -> None:
        """Create the job table's indexes an existing table lacks (``create_all`` makes them only with the table).

        The deployment's one-shot step, as the table's owner, creates them. A
        role that may not (the web tier's, on a database the step has not
        brought up to date yet) goes on without them: an index is speed, not
        behaviour, and the next run of the step adds it.
        """
        have = {index["name"] for index in sa.inspect(self.engine).get_indexes(self.table.name)}
        for index in sorted(self.table.indexes, key=lambda index: str(index.name)):
            if index.name in have:
                continue
            try:
                with self.engine.begin() as conn:
                    index.create(conn, checkfirst=True)
            except sa.exc.DBAPIError as e:
                LOGGER.warning("index %s of %s not created (%s); the job list is slower without it",
                             index.name, self.table.name, (str(e.orig).strip().splitlines() or ["?"])[0])

    #: What a job's launcher (on an exec host) does to each table, as PostgreSQL privileges:
    #: table attribute -> privilege -> columns (None: the whole table). Read from the
    #: launcher's paths: :meth:`get` reads the job row; :meth:`set_job_id`, :meth:`record`
    #: and :meth:`heartbeat` change it; :meth:`_write_request_row` and PyWPS's own
    #: ``dblog.update_pid``/``store_status`` (an ORM load of the whole row, then an update)
    #: change PyWPS's requests row; :meth:`_keep_document` replaces the kept document.
    #: The launcher never touches the stored requests. Keep it in step with those methods:
    #: a column missing here fails the launcher's update on a deployment with separate roles.
    LAUNCHER_PRIVILEGES: ClassVar[dict[str, dict[str, tuple[str, ...] | None]]] = {
        "table": {
            "SELECT": None,
            "UPDATE": ("sge_job_id", "submitted_at", "updated_at", "state", "message", "started_at",
                       "heartbeat_at", "exec_host", "finished_at", "exit_status", "wallclock", "cpu",
                       "peak_memory"),
        },
        "requests": {"SELECT": None, "UPDATE": ("pid", "status", "time_end", "message", "percent_done")},
        "documents": {"SELECT": ("uuid",), "INSERT": ("uuid", "sha256", "size", "document"), "DELETE": None},
    }

    def launcher_grants(self, role: str) -> list[str]:
        """The SQL that gives ``role`` exactly :attr:`LAUNCHER_PRIVILEGES` on this store's tables (PostgreSQL).

        Each table's privileges of ``role`` are revoked first (column privileges with
        them), so a right an older release needed does not linger; run the list in one
        transaction and nobody sees the gap.
        """
        quote = self.engine.dialect.identifier_preparer.quote
        statements = []
        for attribute, privileges in self.LAUNCHER_PRIVILEGES.items():
            table: sa.Table = getattr(self, attribute)
            name = quote(table.name)
            statements.append(f"REVOKE ALL ON TABLE {name} FROM {quote(role)}")
            for privilege, columns in privileges.items():
                if columns is not None:
                    missing = [column for column in columns if column not in table.columns]
                    if missing:
                        raise ValueError(f"{table.name} has no column {', '.join(missing)}")
                columns_sql = f" ({', '.join(quote(column) for column in columns)})" if columns else ""
                statements.append(f"GRANT {privilege}{columns_sql} ON TABLE {name} TO {quote(role)}")
        return statements

    def leader_lock(self, name: str) -> LeaderLock:
        return LeaderLock(self.engine, name)

    # -- the clock ------------------------------------------------------------------

    def db_now(self) -> dt.datetime:
        """The database's current time (naive UTC): the one clock ages are measured on."""
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(utc_now())).scalar_one()
        if isinstance(value, str):  # SQLite hands text back for a bare expression
            value = dt.datetime.fromisoformat(value)
        return value

    @staticmethod
    def _stamp(now: dt.datetime | None) -> Stamp:
        """``now`` when a caller (a test) gives one, else the database's clock, evaluated in the statement."""
        return now if now is not None else utc_now()

    # -- job rows: writes ---------------------------------------------------------

    def create(self, uuid: str, identifier: str, workdir: str | None = None, now: dt.datetime | None = None, *,
               client: str | None = None, max_total: int = 0, max_per_client: int = 0,
               owner: str | None = None) -> None:
        """Insert an accepted job's row; with a cap (> 0), only while the active jobs stay within it.

        Past a cap nothing is written and :class:`OverCap` is raised. The check
        and the insert are one statement (``INSERT ... SELECT ... WHERE count <
        cap``), and on PostgreSQL a transaction-scoped advisory lock serialises
        these inserts across every web host first: under READ COMMITTED two
        concurrent statements would not see each other's row and could both
        pass. So the caps hold exactly; SQLite runs one writing statement at a time.
        """
        stamp = self._stamp(now)
        t = self.table
        values: dict[str, Any] = {"uuid": str(uuid), "identifier": identifier, "state": ACCEPTED,
                                  "workdir": workdir, "client": client, "owner": owner, "created_at": stamp,
                                  "updated_at": stamp}
        with self.engine.begin() as conn:
            conditions = []
            if max_total > 0:
                conditions.append(self._active_count_query().scalar_subquery() < max_total)
            if max_per_client > 0 and client is not None:
                conditions.append(self._active_count_query(client).scalar_subquery() < max_per_client)
            if not conditions:
                conn.execute(t.insert().values(**values))
                return
            if self.engine.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": self._admission_key})
            row = sa.select(*[(value if isinstance(value, sa.ColumnElement) else sa.literal(value, t.c[name].type))
                              .label(name) for name, value in values.items()]).where(*conditions)
            if conn.execute(t.insert().from_select(list(values), row)).rowcount != 1:
                active, client_active = self._active_counts(conn, client)
                raise OverCap(active, client_active, max_total, max_per_client)

    @property
    def _admission_key(self) -> int:
        """The advisory lock of job admission, one per table (a stable 63-bit key, as :class:`LeaderLock`)."""
        return int.from_bytes(hashlib.sha256(f"{self.table.name} admission".encode()).digest()[:8], "big") >> 1

    def _active_count_query(self, client: str | None = None) -> sa.Select[tuple[int]]:
        t = self.table
        query = sa.select(sa.func.count()).select_from(t).where(t.c.state.in_(ACTIVE_STATES))
        return query.where(t.c.client == client) if client is not None else query

    def _active_counts(self, conn: sa.Connection, client: str | None) -> tuple[int, int]:
        total = conn.execute(self._active_count_query()).scalar_one()
        mine = conn.execute(self._active_count_query(client)).scalar_one() if client is not None else 0
        return total, mine

    def active_counts(self, client: str | None = None) -> tuple[int, int]:
        """(active jobs in total, active jobs of ``client``): the front door's early, unlocked check."""
        with self.engine.connect() as conn:
            return self._active_counts(conn, client)

    def discard(self, uuid: str) -> None:
        """Delete a job's rows (job table and PyWPS's requests row): a submission refused before it was accepted."""
        with self.engine.begin() as conn:
            conn.execute(sa.delete(self.table).where(self.table.c.uuid == str(uuid)))
            conn.execute(sa.delete(self.requests).where(self.requests.c.uuid == str(uuid)))
            conn.execute(sa.delete(self.documents).where(self.documents.c.uuid == str(uuid)))

    def set_submitted(self, uuid: str, sge_job_id: str, job_name: str, native_specification: str,
                      now: dt.datetime | None = None) -> None:
        stamp = self._stamp(now)
        with self.engine.begin() as conn:
            conn.execute(
                self.table.update()
                .where(self.table.c.uuid == str(uuid))
                .values(sge_job_id=str(sge_job_id), job_name=job_name,
                        native_specification=native_specification, submitted_at=stamp, updated_at=stamp))

    def set_job_id(self, uuid: str, sge_job_id: str, now: dt.datetime | None = None) -> bool:
        """Record the Grid Engine job id from the job itself, where the submission could not."""
        stamp = self._stamp(now)
        t = self.table
        with self.engine.begin() as conn:
            result = conn.execute(t.update().where(t.c.uuid == str(uuid), t.c.sge_job_id.is_(None))
                                  .values(sge_job_id=str(sge_job_id),
                                          submitted_at=sa.func.coalesce(t.c.submitted_at, stamp), updated_at=stamp))
        return result.rowcount == 1

    def record(self, uuid: str, state: JobState | str, message: str | None = None, percent: float | None = None,
               *, exec_host: str | None = None, usage: Usage | None = None, now: dt.datetime | None = None,
               then: Callable[[], None] | None = None, document: str | None = None,
               sge_job_id: str | None = None) -> bool:
        """Compare-and-set the job row to ``state``, and PyWPS's requests row with it.

        Accepted only from Accepted, Started from Accepted or Started (progress),
        a final state from an active one. False, and nothing written, when the
        row refuses (already final, already started, or missing).

        ``sge_job_id``, the Grid Engine job a launcher runs as: the row also
        refuses while it names another Grid Engine job (it is NULL when the
        submission's acknowledgement was lost). The reconciler submits a job
        lost before it started again under a new id (:meth:`resubmitted`), so
        the old job's launcher, should it start after all, is fenced off here
        and never runs the process beside the new one.

        ``then`` (the status document's write) runs inside the same transaction,
        while the updated row is locked: a competing change of the same job
        waits for it, so documents are written in the order the row moved and
        an Accepted document can never land after the launcher's Started or
        final one. If ``then`` raises, the change is rolled back.

        ``document``, for Succeeded: the status document ``then`` writes. Its
        digest, and its text up to :data:`KEEP_DOCUMENT_BYTES`, are kept in the
        same transaction (:func:`_documents_table`), so the repair pass can
        tell, and mend, a document that no longer agrees with the row.
        """
        state = JobState(state)
        stamp = self._stamp(now)
        t = self.table
        values: dict[str, Any] = {"state": state, "updated_at": stamp}
        if message is not None:
            values["message"] = message
        if state == STARTED:
            values["started_at"] = sa.func.coalesce(t.c.started_at, stamp)
            values["heartbeat_at"] = stamp
        if exec_host is not None:
            values["exec_host"] = exec_host
        if state.final:
            values["finished_at"] = stamp
            if usage is not None:
                values.update(usage.values())
        where = [t.c.uuid == str(uuid), t.c.state.in_(_ALLOWED_FROM[state])]
        if sge_job_id is not None:
            where.append(sa.or_(t.c.sge_job_id.is_(None), t.c.sge_job_id == str(sge_job_id)))
        with self.engine.begin() as conn:
            result = conn.execute(t.update().where(*where).values(**values))
            if result.rowcount != 1:
                return False
            self._write_request_row(conn, uuid, STATUS_OF_STATE[state], message, percent, now or utcnow())
            if document is not None and state == SUCCEEDED:
                self._keep_document(conn, uuid, document)
            if then is not None:
                then()
        return True

    def resubmitted(self, uuid: str, old_sge_job_id: str, new_sge_job_id: str, message: str, *,
                    job_name: str | None = None, native_specification: str | None = None,
                    now: dt.datetime | None = None, then: Callable[[], None] | None = None) -> bool:
        """Move an Accepted job from a lost Grid Engine job to its resubmission (the reconciler's).

        A compare-and-set: only while the row is Accepted and still names
        ``old_sge_job_id``. It fails when the old job's launcher started
        meanwhile (the job runs: it must not run twice) or another reconciler
        resubmitted it first; the caller then deletes its new Grid Engine job.
        Counts the resubmission, and writes PyWPS's requests row and (``then``)
        the Accepted status document in the same transaction, under the row's
        lock, as :meth:`record` does.
        """
        stamp = self._stamp(now)
        t = self.table
        values: dict[str, Any] = {"sge_job_id": str(new_sge_job_id),
                                  "resubmits": sa.func.coalesce(t.c.resubmits, 0) + 1, "submitted_at": stamp,
                                  "updated_at": stamp, "message": message, "gone_since": None}
        if job_name is not None:
            values["job_name"] = job_name
        if native_specification is not None:
            values["native_specification"] = native_specification
        with self.engine.begin() as conn:
            result = conn.execute(t.update().where(t.c.uuid == str(uuid), t.c.state == ACCEPTED,
                                                   t.c.sge_job_id == str(old_sge_job_id)).values(**values))
            if result.rowcount != 1:
                return False
            self._write_request_row(conn, uuid, RequestStatus.ACCEPTED, message, 0, now or utcnow())
            if then is not None:
                then()
        return True

    def _keep_document(self, conn: sa.Connection, uuid: str, document: str) -> None:
        data = document.encode("utf-8")  # as status.atomic_write writes it
        d = self.documents
        conn.execute(sa.delete(d).where(d.c.uuid == str(uuid)))
        conn.execute(d.insert().values(uuid=str(uuid), sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                                       document=document if len(data) <= KEEP_DOCUMENT_BYTES else None))

    def transition(self, uuid: str, state: JobState | str, message: str | None = None, *,
                   exec_host: str | None = None, usage: Usage | None = None, now: dt.datetime | None = None) -> bool:
        """Move an active job to ``state`` (:meth:`record` with a final percentage for a final state)."""
        state = JobState(state)
        return self.record(uuid, state, message, 100 if state.final else None, exec_host=exec_host, usage=usage,
                           now=now)

    def _write_request_row(self, conn: sa.Connection, uuid: str, status: RequestStatus, message: str | None,
                           percent: float | None, now: dt.datetime) -> None:
        # As PyWPS's own dblog.store_status writes it: time_end is "last update", in the
        # writing host's local time (the column is PyWPS's, and PyWPS's clean-up reads it so).
        r = self.requests
        values: dict[str, Any] = {"status": int(status), "time_end": local_of(now)}
        if message is not None:
            values["message"] = message
        if percent is not None:
            values["percent_done"] = percent
        conn.execute(r.update().where(r.c.uuid == str(uuid)).values(**values))

    def heartbeat(self, uuid: str, now: dt.datetime | None = None) -> bool:
        """Record that the launcher is alive; False once the job is final."""
        stamp = self._stamp(now)
        with self.engine.begin() as conn:
            result = conn.execute(
                self.table.update()
                .where(self.table.c.uuid == str(uuid), self.table.c.state.in_(ACTIVE_STATES))
                .values(heartbeat_at=stamp))
        return result.rowcount == 1

    def mark_gone(self, uuid: str, now: dt.datetime) -> None:
        """Remember when Grid Engine first stopped knowing an active job."""
        with self.engine.begin() as conn:
            conn.execute(self.table.update()
                         .where(self.table.c.uuid == str(uuid), self.table.c.gone_since.is_(None))
                         .values(gone_since=now))

    def clear_gone(self, uuid: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.update().where(self.table.c.uuid == str(uuid)).values(gone_since=None))

    # -- job rows: reads ----------------------------------------------------------

    def get(self, uuid: str) -> JobRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(self.table.select().where(self.table.c.uuid == str(uuid))).mappings().first()
        return JobRecord(**row) if row else None

    def percents(self, uuids: Sequence[str]) -> dict[str, float]:
        """PyWPS's percentage done of each of ``uuids`` that has one (its requests row), one query."""
        r = self.requests
        if not uuids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(r.c.uuid, r.c.percent_done)
                                .where(r.c.uuid.in_([str(uuid) for uuid in uuids]), r.c.percent_done.is_not(None)))
            return {uuid: float(percent) for uuid, percent in rows}

    def active(self) -> list[JobRecord]:
        """Jobs Accepted or Started, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(self.table.select().where(self.table.c.state.in_(ACTIVE_STATES))
                                .order_by(self.table.c.created_at)).mappings().all()
        return [JobRecord(**row) for row in rows]

    def finished_since(self, states: Sequence[JobState | str], since: dt.datetime) -> list[JobRecord]:
        """Jobs that reached one of the final ``states`` at or after ``since``, oldest first."""
        t = self.table
        wanted = [JobState(state) for state in states]
        with self.engine.connect() as conn:
            rows = conn.execute(t.select().where(t.c.state.in_(wanted), t.c.finished_at >= since)
                                .order_by(t.c.finished_at)).mappings().all()
        return [JobRecord(**row) for row in rows]

    # -- the metrics' reads (metrics.py, pywps-gridengine-exporter) ---------------------

    def counts_by_process_state(self) -> dict[tuple[str, str], int]:
        """How many rows the job table holds of each (process identifier, state)."""
        t = self.table
        query = sa.select(t.c.identifier, t.c.state, sa.func.count()).group_by(t.c.identifier, t.c.state)
        with self.engine.connect() as conn:
            return {(identifier, state): count for identifier, state, count in conn.execute(query)}

    def oldest_queued(self, now: dt.datetime) -> float:
        """Seconds since the oldest job handed to Grid Engine (it has a job id) was submitted, of those
        not started yet; 0 when there is none."""
        t = self.table
        query = sa.select(sa.func.min(t.c.submitted_at)).where(t.c.state == ACCEPTED, t.c.sge_job_id.is_not(None))
        with self.engine.connect() as conn:
            oldest = conn.execute(query).scalar_one_or_none()
        return max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0

    def timings_since(self, since: dt.datetime) -> list[sa.Row[Any]]:
        """(uuid, identifier, state, submitted_at, started_at, finished_at) of the jobs that started or
        ended at or after ``since``."""
        t = self.table
        query = (sa.select(t.c.uuid, t.c.identifier, t.c.state, t.c.submitted_at, t.c.started_at, t.c.finished_at)
                 .where(sa.or_(t.c.started_at >= since, t.c.finished_at >= since)))
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def succeeded_documents_since(self, since: dt.datetime) -> list[KeptDocument]:
        """Digests of the final documents of jobs that succeeded at or after ``since``, oldest first.

        Only rows that kept one (:meth:`record` with ``document``); a job an
        earlier release recorded has none and is not listed.
        """
        t, d = self.table, self.documents
        query = (sa.select(d.c.uuid, d.c.sha256, d.c.size, d.c.document.is_not(None))
                 .join(t, t.c.uuid == d.c.uuid)
                 .where(t.c.state == SUCCEEDED, t.c.finished_at >= since).order_by(t.c.finished_at))
        with self.engine.connect() as conn:
            return [KeptDocument(uuid, sha256, size, bool(kept)) for uuid, sha256, size, kept in conn.execute(query)]

    def kept_document(self, uuid: str) -> str | None:
        """The final status document kept with a succeeded job's row; None if none (or too large) was kept."""
        d = self.documents
        with self.engine.connect() as conn:
            return conn.execute(sa.select(d.c.document).where(d.c.uuid == str(uuid))).scalar_one_or_none()

    def all(self) -> list[JobRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(self.table.select().order_by(self.table.c.created_at)).mappings().all()
        return [JobRecord(**row) for row in rows]

    # -- the job inspector's reads (inspect_jobs.py, pywps-gridengine-jobs) -------------
    #
    # Read only, and none of them creates the job table: on a database without
    # it (no job handed to Grid Engine yet) they find nothing.

    def find(self, *, states: Sequence[JobState | str] = (), identifier: str | Sequence[str] | None = None,
             since: dt.datetime | None = None, limit: int | None = None, offset: int = 0,
             after: PageCursor | None = None, until: dt.datetime | None = None,
             owner: str | None = None) -> list[JobRecord]:
        """Jobs newest first, created at or after ``since`` and at or before ``until`` (naive UTC), of
        ``states``, process ``identifier`` (one, or any of several) and ``owner``.

        The order is ``created_at`` then ``uuid``, both descending: total, so
        pages never overlap. Paging: ``after`` (the :class:`PageCursor` of the
        previous page's last row) starts after that row, ``offset`` skips that
        many rows (after ``after``, if both), ``limit`` ends the page. Filters,
        order and paging are in the SQL, served by the table's list indexes
        (:func:`_list_indexes`), so a table of many jobs reads and sends back
        only the page asked for; an ``after`` cursor costs the same at any
        depth, an ``offset`` reads the rows it skips.
        """
        if offset < 0 or (limit is not None and limit < 0):
            raise ValueError(f"offset and limit must not be negative (offset {offset}, limit {limit})")
        if not self.has_jobs_table:
            return []
        t = self.table
        query = t.select()
        if states:
            query = query.where(t.c.state.in_([JobState(state) for state in states]))
        if isinstance(identifier, str):
            query = query.where(t.c.identifier == identifier)
        elif identifier is not None:
            query = query.where(t.c.identifier.in_(list(identifier)))
        if owner is not None:
            query = query.where(t.c.owner == owner)
        if since is not None:
            query = query.where(t.c.created_at >= since)
        if until is not None:
            query = query.where(t.c.created_at <= until)
        if after is not None:
            # A row comparison, which PostgreSQL matches to the indexes' (created_at, uuid) end.
            query = query.where(sa.tuple_(t.c.created_at, t.c.uuid)
                                < sa.tuple_(sa.literal(after.created_at, t.c.created_at.type),
                                            sa.literal(str(after.uuid), t.c.uuid.type)))
        query = query.order_by(t.c.created_at.desc(), t.c.uuid.desc())
        if limit is not None:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        with self.engine.connect() as conn:
            return [JobRecord(**row) for row in conn.execute(query).mappings()]

    def by_sge_job_id(self, sge_job_id: str) -> list[JobRecord]:
        """Jobs with this Grid Engine job id, newest first (Grid Engine reuses ids once its counter wraps)."""
        if not self.has_jobs_table:
            return []
        t = self.table
        with self.engine.connect() as conn:
            rows = conn.execute(t.select().where(t.c.sge_job_id == str(sge_job_id))
                                .order_by(t.c.created_at.desc(), t.c.uuid.desc())).mappings().all()
        return [JobRecord(**row) for row in rows]

    def by_uuid_prefix(self, prefix: str, limit: int = 2) -> list[JobRecord]:
        """At most ``limit`` jobs whose uuid starts with ``prefix`` (LIKE wildcards in it escaped), by uuid.

        The default of two is enough to tell a unique prefix from an ambiguous one.
        """
        if not self.has_jobs_table:
            return []
        t = self.table
        with self.engine.connect() as conn:
            rows = conn.execute(t.select().where(t.c.uuid.startswith(prefix, autoescape=True))
                                .order_by(t.c.uuid).limit(limit)).mappings().all()
        return [JobRecord(**row) for row in rows]

    # -- end of the job inspector's reads ---------------------------------------------

    # -- clean-up queries -----------------------------------------------------------
    #
    # A job counts as ended before a cutoff when every row it has says so: the
    # requests row is Succeeded/Failed and last updated before the cutoff, the
    # job row (if any) is final and finished before it, and PyWPS's queue of
    # stored requests does not hold it.

    def require_requests_table(self) -> None:
        if not sa.inspect(self.engine).has_table(self.requests.name):
            raise MissingTable(self.requests.name)

    def _is_execute(self) -> sa.ColumnElement[bool]:
        return sa.func.lower(self.requests.c.operation) == "execute"

    def _request_ended(self, cutoff: Cutoff) -> list[sa.ColumnElement[bool]]:
        r = self.requests
        return [r.c.status.in_([int(s) for s in REQUEST_FINAL]), r.c.time_end < cutoff.local]

    def _job_ended(self, cutoff: Cutoff) -> list[sa.ColumnElement[bool]]:
        j = self.table
        return [j.c.state.in_(FINAL_STATES), j.c.finished_at < cutoff.utc]

    def request_ended(self, row: sa.Row[Any] | None, cutoff: Cutoff) -> bool:
        return row is None or (row.status in REQUEST_FINAL and row.time_end is not None
                               and row.time_end < cutoff.local)

    def job_ended(self, row: sa.Row[Any] | None, cutoff: Cutoff) -> bool:
        return row is None or (row.state in FINAL_STATES and row.finished_at is not None
                               and row.finished_at < cutoff.utc)

    def ended_candidates(self, cutoff: Cutoff) -> list[str]:
        """Uuids of jobs some row says ended before ``cutoff`` (checked row by row later)."""
        with self.engine.connect() as conn:
            found = set(conn.execute(sa.select(self.requests.c.uuid)
                                     .where(self._is_execute(), *self._request_ended(cutoff))).scalars())
            if self.has_jobs_table:
                found.update(conn.execute(sa.select(self.table.c.uuid).where(*self._job_ended(cutoff))).scalars())
        return sorted(found)

    def cleanup_rows(self, uuids: Sequence[str]) -> list[CleanupRows]:
        """The requests row, job row and stored flag of each of ``uuids``."""
        requests: dict[str, sa.Row[Any]] = {}
        jobs: dict[str, sa.Row[Any]] = {}
        stored: set[str] = set()
        with self.engine.connect() as conn:
            for row in conn.execute(sa.select(self.requests).where(self.requests.c.uuid.in_(uuids))):
                requests[row.uuid] = row
            if self.has_jobs_table:
                for row in conn.execute(sa.select(self.table).where(self.table.c.uuid.in_(uuids))):
                    jobs[row.uuid] = row
            if self._has_stored:
                stored.update(conn.execute(sa.select(self.stored.c.uuid)
                                           .where(self.stored.c.uuid.in_(uuids))).scalars())
        return [CleanupRows(uuid, requests.get(uuid), jobs.get(uuid), uuid in stored) for uuid in uuids]

    def delete_ended(self, uuids: str | Sequence[str], cutoff: Cutoff) -> set[str]:
        """Compare-and-delete the rows of ended jobs, one transaction for all of ``uuids``.

        The clean-up passes a chunk (:data:`.cleanup.CHUNK`) of jobs whose files it
        removed: one statement per table for the chunk, not one transaction per
        job (about 18 ms each on PostgreSQL: 190 s for 10,000 jobs). Each row is
        deleted only if it still says ended before ``cutoff`` when the statement
        runs (the condition is in the DELETE, evaluated by the database against
        the row it deletes), and a job keeps all its rows when one of them is
        no longer ended: its requests row stays while its job row is not ended,
        its job row while a requests row stays, its kept document while its job
        row stays. A database error rolls the whole chunk back and is raised;
        chunks already committed stay done. Returns the uuids of ``uuids`` that
        still have a requests or job row (kept: they changed since they were read).
        """
        chunk = [uuids] if isinstance(uuids, str) else list(uuids)
        if not chunk:
            return set()
        r, j, d = self.requests, self.table, self.documents
        with self.engine.begin() as conn:
            where = [r.c.uuid.in_(chunk), *self._request_ended(cutoff)]
            if self.has_jobs_table:
                # NULL-safe "not ended": a row with no finished_at is not ended.
                job_open = sa.or_(j.c.state.not_in(FINAL_STATES), j.c.finished_at.is_(None),
                                  j.c.finished_at >= cutoff.utc)
                where.append(~sa.exists().where(j.c.uuid == r.c.uuid, job_open))
            conn.execute(sa.delete(r).where(*where))
            if self.has_jobs_table:
                conn.execute(sa.delete(j).where(j.c.uuid.in_(chunk), *self._job_ended(cutoff),
                                                ~sa.exists().where(r.c.uuid == j.c.uuid)))
                if self._has_documents:  # the kept document goes with its job row
                    conn.execute(sa.delete(d).where(d.c.uuid.in_(chunk), ~sa.exists().where(j.c.uuid == d.c.uuid)))
            kept = set(conn.execute(sa.select(r.c.uuid).where(r.c.uuid.in_(chunk))).scalars())
            if self.has_jobs_table:
                kept.update(conn.execute(sa.select(j.c.uuid).where(j.c.uuid.in_(chunk))).scalars())
        return kept

    def not_ended_since(self, cutoff: Cutoff) -> set[str]:
        """Jobs started before ``cutoff`` that some row still has as accepted/started/queued."""
        r = self.requests
        with self.engine.connect() as conn:
            found = set(conn.execute(sa.select(r.c.uuid).where(
                self._is_execute(),
                sa.or_(r.c.status.is_(None), r.c.status.not_in([int(s) for s in REQUEST_FINAL])),
                r.c.time_start < cutoff.local)).scalars())
            if self.has_jobs_table:
                j = self.table
                found.update(conn.execute(sa.select(j.c.uuid).where(
                    j.c.state.not_in(FINAL_STATES), j.c.created_at < cutoff.utc)).scalars())
        return found

    def _other_requests_where(self, cutoff: Cutoff) -> list[sa.ColumnElement[bool]]:
        r = self.requests
        where = [~self._is_execute(), *self._request_ended(cutoff)]
        if self._has_stored:
            where.append(~r.c.uuid.in_(sa.select(self.stored.c.uuid)))
        if self.has_jobs_table:
            where.append(~r.c.uuid.in_(sa.select(self.table.c.uuid)))
        return where

    def count_other_requests(self, cutoff: Cutoff) -> int:
        """Rows of GetCapabilities/DescribeProcess (they own no files) that ended before ``cutoff``."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(self.requests)
                                .where(*self._other_requests_where(cutoff))).scalar_one()

    def delete_other_requests(self, cutoff: Cutoff) -> int:
        with self.engine.begin() as conn:
            return conn.execute(sa.delete(self.requests).where(*self._other_requests_where(cutoff))).rowcount

    def known(self, uuids: Iterable[str], chunk: int = 500) -> set[str]:
        """Which of ``uuids`` have a row in any of the tables."""
        ordered = sorted(set(uuids))
        columns = [self.requests.c.uuid]
        if self.has_jobs_table:
            columns.append(self.table.c.uuid)
        if self._has_stored:
            columns.append(self.stored.c.uuid)
        found: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(ordered), chunk):
                part = ordered[start:start + chunk]
                for column in columns:
                    found.update(conn.execute(sa.select(column).where(column.in_(part))).scalars())
        return found

    def workdirs(self) -> list[str]:
        """Every work directory a job row records."""
        if not self.has_jobs_table:
            return []
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(self.table.c.workdir)
                                     .where(self.table.c.workdir.is_not(None))).scalars())

    def open_local_requests(self) -> list[tuple[Any, dt.datetime | None]]:
        """(pid, time_start) of open Execute requests PyWPS runs itself (no job row)."""
        r = self.requests
        query = sa.select(r.c.pid, r.c.time_start).where(
            self._is_execute(),
            sa.or_(r.c.status.is_(None), r.c.status.not_in([int(s) for s in REQUEST_FINAL])))
        if self.has_jobs_table:
            query = query.where(~r.c.uuid.in_(sa.select(self.table.c.uuid)))
        with self.engine.connect() as conn:
            return [(pid, started) for pid, started in conn.execute(query)]


_STORES: dict[tuple[str, str], JobStore] = {}
