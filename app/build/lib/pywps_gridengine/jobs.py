"""Job bookkeeping beside PyWPS's requests table.

PyWPS keeps one row per request in ``<prefix>requests`` (status, percentage,
message) but nothing about the batch system. This table adds, per WPS job
handed to Grid Engine: the SGE job id and name, the state as the app sees it,
the exec host and a heartbeat of the launcher, so the reconciler can find jobs
that Grid Engine lost and fail them. It lives in the same database as PyWPS's
tables (``[logging] database``): PostgreSQL in production, SQLite in tests.

State changes are compare-and-set: a row that already reached a final state
(``succeeded``/``failed``) is never moved again. That is what keeps a
reconciler's "failed" from being overwritten by a launcher that was presumed
lost but later comes back, and vice versa.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

ACCEPTED = "accepted"
STARTED = "started"
SUCCEEDED = "succeeded"
FAILED = "failed"
ACTIVE_STATES = (ACCEPTED, STARTED)
FINAL_STATES = (SUCCEEDED, FAILED)


def utcnow() -> dt.datetime:
    """Naive UTC timestamp (both SQLite and PostgreSQL ``timestamp`` columns)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _table(metadata: sa.MetaData, prefix: str) -> sa.Table:
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
    )


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


class JobStore:
    """Access to the ``<prefix>gridengine_jobs`` table."""

    def __init__(self, engine: Engine, prefix: str = "pywps_") -> None:
        self.engine = engine
        self.metadata = sa.MetaData()
        self.table = _table(self.metadata, prefix)
        self.metadata.create_all(engine)

    @classmethod
    def from_pywps(cls) -> JobStore:
        """Use the database and table prefix PyWPS is configured with (``[logging]``)."""
        from pywps import configuration, dblog

        database = str(configuration.get_config_value("logging", "database"))
        prefix = str(configuration.get_config_value("logging", "prefix") or "")
        key = (database, prefix)
        store = _STORES.get(key)
        if store is None:
            session = dblog.get_session()
            try:
                engine = session.get_bind()
            finally:
                session.close()
            store = _STORES[key] = cls(engine, prefix)  # type: ignore[arg-type]
        return store

    # -- writes -----------------------------------------------------------------

    def create(self, uuid: str, identifier: str, workdir: str | None = None, now: dt.datetime | None = None) -> None:
        now = now or utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                self.table.insert().values(
                    uuid=str(uuid), identifier=identifier, state=ACCEPTED, workdir=workdir,
                    created_at=now, updated_at=now,
                )
            )

    def set_submitted(self, uuid: str, sge_job_id: str, job_name: str, native_specification: str,
                      now: dt.datetime | None = None) -> None:
        now = now or utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                self.table.update()
                .where(self.table.c.uuid == str(uuid))
                .values(sge_job_id=str(sge_job_id), job_name=job_name,
                        native_specification=native_specification, submitted_at=now, updated_at=now)
            )

    def transition(self, uuid: str, state: str, message: str | None = None, *,
                   exec_host: str | None = None, now: dt.datetime | None = None) -> bool:
        """Move an active job to ``state``; False if the row is already final (or missing)."""
        now = now or utcnow()
        values: dict[str, Any] = {"state": state, "updated_at": now}
        if message is not None:
            values["message"] = message
        if state == STARTED:
            values["started_at"] = now
            values["heartbeat_at"] = now
        if exec_host is not None:
            values["exec_host"] = exec_host
        if state in FINAL_STATES:
            values["finished_at"] = now
        with self.engine.begin() as conn:
            result = conn.execute(
                self.table.update()
                .where(self.table.c.uuid == str(uuid), self.table.c.state.in_(ACTIVE_STATES))
                .values(**values)
            )
        return result.rowcount == 1

    def heartbeat(self, uuid: str, now: dt.datetime | None = None) -> bool:
        """Record that the launcher is alive; False once the job is final."""
        now = now or utcnow()
        with self.engine.begin() as conn:
            result = conn.execute(
                self.table.update()
                .where(self.table.c.uuid == str(uuid), self.table.c.state.in_(ACTIVE_STATES))
                .values(heartbeat_at=now)
            )
        return result.rowcount == 1

    def mark_gone(self, uuid: str, now: dt.datetime) -> None:
        """Remember when Grid Engine first stopped knowing an active job."""
        with self.engine.begin() as conn:
            conn.execute(
                self.table.update()
                .where(self.table.c.uuid == str(uuid), self.table.c.gone_since.is_(None))
                .values(gone_since=now)
            )

    def clear_gone(self, uuid: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.update().where(self.table.c.uuid == str(uuid)).values(gone_since=None))

    # -- reads ------------------------------------------------------------------

    def get(self, uuid: str) -> JobRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(self.table.select().where(self.table.c.uuid == str(uuid))).mappings().first()
        return JobRecord(**row) if row else None

    def active(self) -> list[JobRecord]:
        """Jobs Accepted or Started, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                self.table.select()
                .where(self.table.c.state.in_(ACTIVE_STATES))
                .order_by(self.table.c.created_at)
            ).mappings().all()
        return [JobRecord(**row) for row in rows]

    def all(self) -> Iterable[JobRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(self.table.select().order_by(self.table.c.created_at)).mappings().all()
        return [JobRecord(**row) for row in rows]


_STORES: dict[tuple[str, str], JobStore] = {}
