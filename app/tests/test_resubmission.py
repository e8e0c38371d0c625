"""A job Grid Engine lost before its launcher started is submitted again, never run twice.

The job is submitted through the app (DRMAA replaced by a recording
submitter), so its dump is on the "shared tree" as the web host left it; the
reconciler is fed Grid Engine's state by a table (as in test_reconciler.py)
and submits through a recording submitter; launchers run in this process as
sge_execd would start them, each with its own ``JOB_ID``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_jobs import create_old_job_table
from test_reconciler import Clock, TableSource
from test_scheduler_launcher import RecordingSubmitter, submit
from wpstest import app_client, status_of, status_text, uuid_from_status_location

from pywps_gridengine import launcher
from pywps_gridengine.config import ConfigError, load_settings
from pywps_gridengine.jobs import JobStore
from pywps_gridengine.reconciler import JobInfo, Reconciler, SgeState, failed_document_writer, status_document_state
from pywps_gridengine.scheduler import GridEngineScheduler, JobSpec

T0 = dt.datetime(2026, 3, 1, 8, 0, 0)
FIRST = "4242"  # the web host's submission (RecordingSubmitter's first id)


class Cluster:
    """The app, a reconciler, and what Grid Engine knows, for one test."""

    def __init__(self, env, web: RecordingSubmitter, max_resubmits: int = 2) -> None:
        self.env = env
        self.client = app_client(env.config)
        self.web = web
        self.store = JobStore.for_config(env.config)
        self.source = TableSource()
        self.clock = Clock(T0)
        self.resubmitter = RecordingSubmitter(first_id=5000)
        self.reconciler = Reconciler(self.store, self.source, heartbeat_timeout=30, gone_grace=15,
                                     submit_timeout=120, write_failed=failed_document_writer(env.config),
                                     document_state=status_document_state(env.config), clock=self.clock,
                                     config=env.config, submitter=self.resubmitter, max_resubmits=max_resubmits)

    def lose(self, sge_job_id: str) -> None:
        """Grid Engine shows the job running, but its launcher never starts (execd never got it)."""
        self.source.jobs[sge_job_id] = JobInfo(SgeState.RUNNING)

    def passes_until_verdict(self):
        """Reconciler passes, 15 s apart, until it resubmits or fails something (submit_timeout: 120 s)."""
        for _ in range(10):
            result = self.reconciler.run_once()
            if result.resubmitted or result.failed:
                return result
            self.clock.advance(15)
        raise AssertionError("no verdict within 150 s")

    def passes(self, count: int) -> list:
        """``count`` reconciler passes, 15 s apart (the clock advances after each)."""
        results = []
        for _ in range(count):
            results.append(self.reconciler.run_once())
            self.clock.advance(15)
        return results

    def launch(self, spec: JobSpec, sge_job_id: str, monkeypatch) -> int:
        """sge_execd starting the job's launcher as Grid Engine job ``sge_job_id``."""
        monkeypatch.setenv("JOB_ID", sge_job_id)
        for key, value in spec.environment.items():
            if key != "PATH":
                monkeypatch.setenv(key, value)
        return launcher.main(spec.args)

    def document(self, uuid: str) -> bytes:
        return (self.env.outputs / f"{uuid}.xml").read_bytes()


@pytest.fixture
def make_cluster(make_env, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the launcher changes into (then removes) job work dirs

    def make(max_resubmits: int = 2) -> Cluster:
        env = make_env(mode="scheduler", extra="[gridengine]\nqueue = wps.q\n\n[gridengine:sleep]\nh_rt = 00:02:00\n")
        web = RecordingSubmitter()
        monkeypatch.setattr(GridEngineScheduler, "submitter", web)
        return Cluster(env, web, max_resubmits)

    return make


def submitted_sleep(cluster: Cluster) -> str:
    uuid = uuid_from_status_location(submit(cluster.client, "sleep", "delay=0"))
    assert cluster.store.get(uuid).sge_job_id == FIRST
    return uuid


def test_job_lost_before_it_started_is_run_again_and_succeeds(make_cluster, monkeypatch):
    cluster = make_cluster()
    uuid = submitted_sleep(cluster)
    [original] = cluster.web.specs
    cluster.lose(FIRST)
    result = cluster.passes_until_verdict()
    assert (result.resubmitted, result.failed) == (1, 0)
    assert cluster.clock.now - T0 >= dt.timedelta(seconds=120)  # not before submit_timeout

    assert cluster.source.deleted == [FIRST]  # the lost job is deleted first
    [again] = cluster.resubmitter.specs
    assert again == original  # same dump, work directory, name, resources, environment
    assert Path(again.args[-1]).is_file()
    record = cluster.store.get(uuid)
    assert (record.state, record.sge_job_id, record.resubmits) == ("accepted", "5000", 1)
    message = f"Resubmitted as Grid Engine job 5000: Grid Engine job {FIRST} was lost before it started"
    assert record.message == message
    doc = cluster.env.status_doc(uuid)
    assert status_of(doc) == "ProcessAccepted" and message in status_text(doc)
    assert not cluster.reconciler.running_unstarted

    cluster.source.jobs["5000"] = JobInfo(SgeState.QUEUED)
    cluster.clock.advance(15)
    assert cluster.reconciler.run_once().resubmitted == 0  # queued again: left alone

    assert cluster.launch(again, "5000", monkeypatch) == 0
    doc = cluster.env.status_doc(uuid)
    assert status_of(doc) == "ProcessSucceeded", status_text(doc)
    assert "Grid Engine job 5000" in status_text(doc)
    record = cluster.store.get(uuid)
    assert (record.state, record.sge_job_id, record.resubmits) == ("succeeded", "5000", 1)


def test_late_launcher_of_the_lost_job_runs_nothing(make_cluster, monkeypatch, capsys):
    """The old job starts after all (its host came back): its launcher sees another job id
    in the row, exits 0 without touching the row or the document; the new one runs."""
    cluster = make_cluster()
    uuid = submitted_sleep(cluster)
    [original] = cluster.web.specs
    cluster.lose(FIRST)
    assert cluster.passes_until_verdict().resubmitted == 1
    before, row_before = cluster.document(uuid), cluster.store.get(uuid)

    assert cluster.launch(original, FIRST, monkeypatch) == 0
    assert "runs as Grid Engine job 5000 now" in capsys.readouterr().err
    assert cluster.document(uuid) == before
    assert cluster.store.get(uuid) == row_before

    assert cluster.launch(cluster.resubmitter.specs[0], "5000", monkeypatch) == 0
    assert status_of(cluster.env.status_doc(uuid)) == "ProcessSucceeded"


def test_launcher_racing_the_resubmission_is_fenced_by_the_row(make_cluster, monkeypatch):
    """The old launcher read the row before the reconciler moved it to the new job: its
    Started (and the failure PyWPS then tries to record) are refused by the job-id fence."""
    cluster = make_cluster()
    uuid = submitted_sleep(cluster)
    [original] = cluster.web.specs
    real_get = JobStore.get

    def get_then_resubmit(store, job_uuid):
        record = real_get(store, job_uuid)
        if record is not None and record.sge_job_id == FIRST:  # the reconciler moves the row right after
            assert store.resubmitted(job_uuid, FIRST, "5000", "Resubmitted as Grid Engine job 5000")
        return record

    monkeypatch.setattr(JobStore, "get", get_then_resubmit)
    before = cluster.document(uuid)
    assert cluster.launch(original, FIRST, monkeypatch) == 0
    monkeypatch.setattr(JobStore, "get", real_get)
    record = cluster.store.get(uuid)
    assert (record.state, record.sge_job_id, record.started_at) == ("accepted", "5000", None)
    assert cluster.document(uuid) == before


def test_no_more_than_max_resubmits_then_failed_with_the_reason(make_cluster):
    cluster = make_cluster(max_resubmits=2)
    uuid = submitted_sleep(cluster)
    lost = [FIRST]
    for new in ("5000", "5001"):
        cluster.lose(lost[-1])
        assert cluster.passes_until_verdict().resubmitted == 1
        assert cluster.store.get(uuid).sge_job_id == new
        lost.append(new)
    cluster.lose("5001")
    assert cluster.passes_until_verdict().failed == 1
    record = cluster.store.get(uuid)
    assert (record.state, record.resubmits) == ("failed", 2)
    assert "launcher never reported the start" in record.message
    assert "It was not run again: it was submitted again 2 times already" in record.message
    assert "max_resubmits = 2" in record.message
    doc = cluster.env.status_doc(uuid)
    assert status_of(doc) == "ProcessFailed" and "It was not run again" in status_text(doc)
    assert cluster.source.deleted == lost  # each lost job deleted, the last one by the failure
    assert len(cluster.resubmitter.specs) == 2


def test_resubmission_turned_off_fails_as_before(make_cluster):
    cluster = make_cluster(max_resubmits=0)
    uuid = submitted_sleep(cluster)
    cluster.lose(FIRST)
    assert cluster.passes_until_verdict().failed == 1
    assert "turned off ([gridengine] max_resubmits = 0)" in cluster.store.get(uuid).message
    assert cluster.resubmitter.specs == [] and cluster.source.deleted == [FIRST]


def test_dump_gone_fails_with_the_reason(make_cluster):
    cluster = make_cluster()
    uuid = submitted_sleep(cluster)
    Path(cluster.web.specs[0].args[-1]).unlink()
    cluster.lose(FIRST)
    assert cluster.passes_until_verdict().failed == 1
    record = cluster.store.get(uuid)
    assert record.state == "failed" and "It was not run again: its job dump is gone" in record.message
    assert status_of(cluster.env.status_doc(uuid)) == "ProcessFailed"
    assert cluster.resubmitter.specs == [] and cluster.source.deleted == [FIRST]


def test_submission_refused_fails_with_the_cause(make_cluster):
    cluster = make_cluster()
    uuid = submitted_sleep(cluster)
    cluster.resubmitter.error = RuntimeError("code 17: error: no suitable queues")
    cluster.lose(FIRST)
    assert cluster.passes_until_verdict().failed == 1
    assert ("It was not run again: Grid Engine did not take it again (RuntimeError: code 17: error: no suitable "
            "queues)") in cluster.store.get(uuid).message


def test_launcher_starting_meanwhile_wins_and_the_new_job_is_deleted(make_cluster):
    """The compare-and-set loses: the old launcher wrote its start while the reconciler submitted."""
    cluster = make_cluster()
    uuid = submitted_sleep(cluster)
    cluster.lose(FIRST)
    real_submit = cluster.resubmitter.submit

    def submit_while_the_launcher_starts(spec):
        assert cluster.store.record(uuid, "started", "PyWPS Process started", 0, exec_host="exec1",
                                    sge_job_id=FIRST)
        return real_submit(spec)

    cluster.resubmitter.submit = submit_while_the_launcher_starts
    results = cluster.passes(9)  # 0 to 120 s: the verdict comes in the last
    assert (results[-1].resubmitted, results[-1].failed) == (0, 0)
    assert cluster.resubmitter.specs  # it did submit
    record = cluster.store.get(uuid)
    assert (record.state, record.sge_job_id, record.resubmits) == ("started", FIRST, None)
    assert cluster.source.deleted == [FIRST, "5000"]  # the new job is deleted again


def test_a_failed_move_is_retried_not_taken_for_the_deletion(make_cluster, monkeypatch):
    """The database fails the move after the old job was deleted: the new job is deleted and the
    next pass submits again, instead of failing the job for the deletion it made itself."""
    cluster = make_cluster()
    uuid = submitted_sleep(cluster)
    cluster.lose(FIRST)
    real = JobStore.resubmitted
    calls = []

    def flaky(store, *args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise sa.exc.OperationalError("UPDATE", {}, Exception("server closed the connection unexpectedly"))
        return real(store, *args, **kwargs)

    monkeypatch.setattr(JobStore, "resubmitted", flaky)
    results = cluster.passes(9)
    assert len(calls) == 1 and results[-1].resubmitted == 0  # the first attempt, at 120 s, failed
    assert FIRST not in cluster.source.jobs  # deleted: Grid Engine no longer knows it
    assert cluster.passes(1)[0].resubmitted == 1
    record = cluster.store.get(uuid)
    assert (record.state, record.sge_job_id, record.resubmits) == ("accepted", "5001", 1)
    assert cluster.source.deleted == [FIRST, "5000", FIRST]  # the submission whose move failed, deleted


def test_max_resubmits_setting(make_env):
    make_env()
    assert load_settings().max_resubmits == 2
    make_env(extra="[gridengine]\nmax_resubmits = 0\n")
    assert load_settings().max_resubmits == 0


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_bad_max_resubmits_is_refused(make_env, value):
    make_env(extra=f"[gridengine]\nmax_resubmits = {value}\n")
    with pytest.raises(ConfigError, match=r"\[gridengine\] max_resubmits"):
        load_settings()


def test_the_fence_and_the_move_on_the_job_row(tmp_path):
    jobs = JobStore(sa.create_engine(f"sqlite:///{tmp_path}/jobs.sqlite"), prefix="t_")
    jobs.create("u", "sleep", now=T0)
    assert jobs.record("u", "started", "start", 0, sge_job_id="7")  # no id yet (acknowledgement lost): its own
    jobs.create("v", "sleep", now=T0)
    jobs.set_submitted("v", "7", "wps-sleep-v", "", now=T0)
    assert not jobs.resubmitted("u", "7", "8", "x")  # started: never submitted again
    assert not jobs.resubmitted("v", "6", "8", "x")  # another job id than the caller saw
    assert jobs.resubmitted("v", "7", "8", "moved")
    assert not jobs.record("v", "started", "start", 0, sge_job_id="7")  # the old job's launcher
    assert jobs.record("v", "started", "start", 0, sge_job_id="8")
    assert jobs.transition("v", "succeeded", "done")  # other callers: as before
    record = jobs.get("v")
    assert (record.state, record.sge_job_id, record.resubmits, record.message) == ("succeeded", "8", 1, "done")


def test_a_job_table_of_an_older_release_gets_the_resubmits_column(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path}/old.sqlite")
    with engine.begin() as conn:
        create_old_job_table(conn)
        conn.execute(sa.text("INSERT INTO t_gridengine_jobs (uuid, identifier, state, sge_job_id, created_at, "
                             "updated_at) VALUES ('old', 'sleep', 'accepted', '41', '2026-01-01 00:00:00', "
                             "'2026-01-01 00:00:00')"))
    jobs = JobStore(engine, prefix="t_")
    assert "resubmits" in {column["name"] for column in sa.inspect(engine).get_columns("t_gridengine_jobs")}
    assert jobs.get("old").resubmits is None
    assert jobs.resubmitted("old", "41", "42", "moved")
    assert jobs.resubmitted("old", "42", "43", "moved again")
    assert (jobs.get("old").sge_job_id, jobs.get("old").resubmits) == ("43", 2)


class HostSource(TableSource):
    """Grid Engine's state, and the host each running job was dispatched to (``qstat -j``)."""

    def __init__(self, hosts: dict[str, str | Exception]) -> None:
        super().__init__()
        self.hosts = hosts

    def exec_host(self, sge_job_id: str) -> str | None:
        host = self.hosts.get(sge_job_id)
        if isinstance(host, Exception):
            raise host
        return host


def test_job_run_again_prefers_another_host_than_the_one_that_lost_it(make_cluster):
    cluster = make_cluster()
    cluster.source = cluster.reconciler.source = HostSource({FIRST: "exec1"})
    uuid = submitted_sleep(cluster)
    [original] = cluster.web.specs
    cluster.lose(FIRST)
    assert cluster.passes_until_verdict().resubmitted == 1
    [again] = cluster.resubmitter.specs
    # Soft and last: the spec's own options keep their meaning, a cluster with only that host still runs it.
    assert again.native_specification == f"{original.native_specification} -soft -l hostname=!exec1"
    assert again.args == original.args and again.environment == original.environment
    record = cluster.store.get(uuid)
    assert record.message == f"Resubmitted as Grid Engine job 5000: Grid Engine job {FIRST} was lost on exec1 " \
                             "before it started"


@pytest.mark.parametrize("host", [OSError("qstat not found"), None, "exec1 -l h_rt=0", "-q", ""])
def test_job_run_again_unchanged_when_its_host_is_unknown_or_not_a_host_name(make_cluster, host):
    cluster = make_cluster()
    cluster.source = cluster.reconciler.source = HostSource({FIRST: host})
    submitted_sleep(cluster)
    [original] = cluster.web.specs
    cluster.lose(FIRST)
    assert cluster.passes_until_verdict().resubmitted == 1
    [again] = cluster.resubmitter.specs
    assert again == original
