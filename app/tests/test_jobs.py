"""Job bookkeeping on SQLite."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from pywps_gridengine.jobs import JobStore, Usage


def store(tmp_path):
    return JobStore(sa.create_engine(f"sqlite:///{tmp_path}/jobs.sqlite"), prefix="t_")


T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def test_lifecycle(tmp_path):
    jobs = store(tmp_path)
    jobs.create("u1", "sleep", workdir="/w/u1", now=T0)
    jobs.set_submitted("u1", "42", "wps-sleep-u1", "-l h_rt=60", now=T0)
    assert jobs.transition("u1", "started", "running", exec_host="exec1", now=T0 + dt.timedelta(seconds=5))
    assert jobs.heartbeat("u1", now=T0 + dt.timedelta(seconds=15))
    record = jobs.get("u1")
    assert (record.sge_job_id, record.job_name, record.state, record.exec_host) == ("42", "wps-sleep-u1", "started",
                                                                                   "exec1")
    assert record.heartbeat_at == T0 + dt.timedelta(seconds=15)
    assert [j.uuid for j in jobs.active()] == ["u1"]
    assert jobs.transition("u1", "succeeded", "done", now=T0 + dt.timedelta(seconds=20))
    assert jobs.get("u1").finished_at == T0 + dt.timedelta(seconds=20)
    assert jobs.active() == []


def test_final_state_is_never_left(tmp_path):
    jobs = store(tmp_path)
    jobs.create("u1", "sleep", now=T0)
    assert jobs.transition("u1", "failed", "lost")
    assert not jobs.transition("u1", "started", "late launcher")
    assert not jobs.transition("u1", "succeeded", "late launcher")
    assert not jobs.heartbeat("u1")
    assert jobs.get("u1").state == "failed"
    assert jobs.get("u1").message == "lost"


def test_unknown_job(tmp_path):
    jobs = store(tmp_path)
    assert jobs.get("nope") is None
    assert not jobs.transition("nope", "started")


def test_gone_since_is_set_once(tmp_path):
    jobs = store(tmp_path)
    jobs.create("u1", "sleep", now=T0)
    jobs.mark_gone("u1", T0)
    jobs.mark_gone("u1", T0 + dt.timedelta(seconds=30))
    assert jobs.get("u1").gone_since == T0
    jobs.clear_gone("u1")
    assert jobs.get("u1").gone_since is None


def test_table_sits_beside_pywps_tables(make_env):
    from pywps import dblog

    env = make_env()
    jobs = JobStore.for_config(env.config)
    jobs.create("u1", "hello")
    engine = dblog.get_session().get_bind()
    tables = set(sa.inspect(engine).get_table_names())
    assert {"pywps_requests", "pywps_gridengine_jobs"} <= tables


def requests_row(jobs, uuid):
    with jobs.engine.connect() as conn:
        return conn.execute(jobs.requests.select().where(jobs.requests.c.uuid == uuid)).first()


def add_request_row(jobs, uuid):
    with jobs.engine.begin() as conn:
        conn.execute(jobs.requests.insert().values(uuid=uuid, pid=1, operation="execute", version="1.0.0",
                                                   time_start=T0, status=1, percent_done=0))


def test_requests_row_follows_the_job_row(tmp_path):
    jobs = store(tmp_path)
    jobs.create("u1", "sleep", now=T0)
    add_request_row(jobs, "u1")
    assert jobs.record("u1", "started", "running", 40, now=T0 + dt.timedelta(seconds=5))
    row = requests_row(jobs, "u1")
    assert (row.status, row.message, row.percent_done) == (2, "running", 40)
    assert jobs.transition("u1", "failed", "lost")
    row = requests_row(jobs, "u1")
    assert (row.status, row.message, row.percent_done) == (5, "lost", 100)


def test_refused_moves_write_nothing(tmp_path):
    jobs = store(tmp_path)
    jobs.create("u1", "sleep", now=T0)
    add_request_row(jobs, "u1")
    assert jobs.record("u1", "started", "running", 20, now=T0)
    # Accepted never comes back once the job started.
    assert not jobs.record("u1", "accepted", "queued", 0)
    assert jobs.get("u1").state == "started" and requests_row(jobs, "u1").status == 2
    assert jobs.transition("u1", "failed", "lost with its host")
    # A late launcher's progress update and its success are both refused.
    assert not jobs.record("u1", "started", "still running", 80)
    assert not jobs.record("u1", "succeeded", "done", 100)
    row = requests_row(jobs, "u1")
    assert (jobs.get("u1").state, row.status, row.message) == ("failed", 5, "lost with its host")


def test_progress_keeps_the_start_time(tmp_path):
    jobs = store(tmp_path)
    jobs.create("u1", "sleep", now=T0)
    assert jobs.record("u1", "started", "0 %", 0, now=T0 + dt.timedelta(seconds=1))
    assert jobs.record("u1", "started", "50 %", 50, now=T0 + dt.timedelta(seconds=9))
    record = jobs.get("u1")
    assert record.started_at == T0 + dt.timedelta(seconds=1)
    assert record.heartbeat_at == T0 + dt.timedelta(seconds=9)


def test_cutoff_is_one_moment_on_both_clocks():
    from pywps_gridengine.jobs import Cutoff, local_of

    cutoff = Cutoff.ago(dt.timedelta(days=7), now=T0)
    assert cutoff.utc == T0 - dt.timedelta(days=7)
    assert cutoff.local == local_of(cutoff.utc)
    assert cutoff.epoch == (T0 - dt.timedelta(days=7)).replace(tzinfo=dt.UTC).timestamp()


def test_rows_are_stamped_by_the_database_clock_not_the_host(tmp_path, monkeypatch):
    """A host whose clock is off (here: by 25 years) stamps nothing with it."""
    from pywps_gridengine import jobs as jobs_module

    skewed = dt.datetime(2001, 1, 1)
    monkeypatch.setattr(jobs_module, "utcnow", lambda: skewed)
    jobs = store(tmp_path)
    before = jobs.db_now()
    jobs.create("u1", "sleep")
    assert jobs.record("u1", "started", "running", 10)
    assert jobs.heartbeat("u1")
    after = jobs.db_now()
    record = jobs.get("u1")
    for stamp in (record.created_at, record.started_at, record.heartbeat_at, record.updated_at):
        assert before <= stamp <= after


def test_reconciler_judges_heartbeats_on_the_database_clock(tmp_path, monkeypatch):
    """Skew between the exec host and the web host cannot fail a healthy job."""
    from pywps_gridengine import jobs as jobs_module
    from pywps_gridengine.reconciler import JobInfo, Reconciler, SgeState

    class Running:
        def job_info(self, sge_job_id):
            return JobInfo(SgeState.RUNNING)

        def terminate(self, sge_job_id):
            raise AssertionError("a healthy job was deleted")

    jobs = store(tmp_path)
    with monkeypatch.context() as exec_host:
        # The exec host's clock runs an hour behind while it starts the job and beats.
        exec_host.setattr(jobs_module, "utcnow", lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None)
                          - dt.timedelta(hours=1))
        jobs.create("u1", "sleep")
        jobs.set_submitted("u1", "7", "wps-sleep-u1", "")
        assert jobs.record("u1", "started", "running", 10)
        assert jobs.heartbeat("u1")
    failed = []
    result = Reconciler(jobs, Running(), heartbeat_timeout=30, write_failed=lambda *a: failed.append(a)).run_once()
    assert (result.checked, result.failed, failed) == (1, 0, [])
    assert jobs.get("u1").state == "started"


def create_old_job_table(conn: sa.Connection) -> None:
    """The job table ``t_gridengine_jobs`` as an older release created it (before usage and resubmits)."""
    conn.execute(sa.text("CREATE TABLE t_gridengine_jobs (uuid VARCHAR(255) PRIMARY KEY, identifier VARCHAR(255) "
                         "NOT NULL, state VARCHAR(16) NOT NULL, sge_job_id VARCHAR(64), job_name VARCHAR(255), "
                         "native_specification TEXT, workdir TEXT, exec_host VARCHAR(255), message TEXT, "
                         "created_at DATETIME NOT NULL, submitted_at DATETIME, started_at DATETIME, "
                         "heartbeat_at DATETIME, gone_since DATETIME, finished_at DATETIME, "
                         "updated_at DATETIME NOT NULL)"))


def test_a_job_table_of_an_older_release_gets_the_new_columns(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path}/old.sqlite")
    with engine.begin() as conn:
        create_old_job_table(conn)
        conn.execute(sa.text("INSERT INTO t_gridengine_jobs (uuid, identifier, state, created_at, updated_at) "
                             "VALUES ('old', 'sleep', 'started', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
    jobs = JobStore(engine, prefix="t_")
    assert jobs.transition("old", "failed", "lost", usage=Usage(exec_host="exec1", exit_status=137, wallclock=9.5))
    record = jobs.get("old")
    assert (record.state, record.exit_status, record.wallclock, record.cpu) == ("failed", 137, 9.5, None)
    JobStore(engine, prefix="t_")  # a second start finds nothing to add


def test_the_document_write_runs_under_the_change_and_can_undo_it(tmp_path):
    jobs = store(tmp_path)
    jobs.create("u1", "sleep", now=T0)
    written: list[str] = []
    assert jobs.record("u1", "started", "running", 10, then=lambda: written.append("started"))
    assert written == ["started"]

    def full_disk() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        jobs.record("u1", "succeeded", "done", 100, then=full_disk)
    assert jobs.get("u1").state == "started"  # rolled back: the row never says more than the document
    assert not jobs.record("u1", "accepted", "queued", 0, then=lambda: written.append("accepted"))
    assert written == ["started"]  # a refused change writes no document


def test_launcher_grants_name_the_launchers_columns_only(tmp_path):
    """The launcher's grants (made by the deployment's one-shot step): every column a job writes, no other table."""
    statements = store(tmp_path).launcher_grants("wps_launcher")
    assert statements[0] == "REVOKE ALL ON TABLE t_gridengine_jobs FROM wps_launcher"
    assert not [s for s in statements if "stored_requests" in s]
    update = next(s for s in statements if s.startswith("GRANT UPDATE") and "gridengine_jobs" in s)
    written = {"state", "message", "started_at", "heartbeat_at", "exec_host", "finished_at", "updated_at",
               "sge_job_id", "submitted_at", *Usage(exit_status=0, wallclock=1.0, cpu=1.0, peak_memory=1.0).values()}
    assert set(update[update.index("(") + 1:update.index(")")].split(", ")) == written
    assert "client" not in update and "resubmits" not in update


def test_launcher_grants_refuse_a_column_the_table_lacks(tmp_path, monkeypatch):
    monkeypatch.setitem(JobStore.LAUNCHER_PRIVILEGES, "requests", {"UPDATE": ("pid", "no_such_column")})
    with pytest.raises(ValueError, match="t_requests has no column no_such_column"):
        store(tmp_path).launcher_grants("wps_launcher")
