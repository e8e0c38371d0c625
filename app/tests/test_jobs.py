"""Job bookkeeping on SQLite."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from pywps_gridengine.jobs import JobStore


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

    make_env()
    jobs = JobStore.from_pywps()
    jobs.create("u1", "hello")
    engine = dblog.get_session().get_bind()
    tables = set(sa.inspect(engine).get_table_names())
    assert {"pywps_requests", "pywps_gridengine_jobs"} <= tables
