"""Reconciler transitions with a scheduler state source fed by the test."""

from __future__ import annotations

import datetime as dt

import pytest
from prometheus_client import REGISTRY
from wpstest import status_of, status_text

from pywps_gridengine.jobs import JobStore
from pywps_gridengine.reconciler import (
    JobInfo,
    Reconciler,
    SgeState,
    failed_document_writer,
    info_from_qacct,
    main,
    parse_qacct,
    status_document_state,
)

T0 = dt.datetime(2026, 3, 1, 8, 0, 0)


class TableSource:
    """What Grid Engine "knows", as a table the test fills in."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobInfo] = {}
        self.deleted: list[str] = []

    def job_info(self, sge_job_id: str) -> JobInfo:
        return self.jobs.get(sge_job_id, JobInfo(SgeState.UNKNOWN))

    def terminate(self, sge_job_id: str) -> None:
        self.deleted.append(sge_job_id)
        self.jobs.pop(sge_job_id, None)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def world(make_env):
    env = make_env()
    store = JobStore.for_config(env.config)
    source = TableSource()
    clock = Clock(T0)
    reconciler = Reconciler(store, source, heartbeat_timeout=30, gone_grace=15, submit_timeout=120,
                            write_failed=failed_document_writer(env.config),
                            document_state=status_document_state(env.config), clock=clock)
    return env, store, source, clock, reconciler


def add_job(store, uuid, sge_id="101", started=True, identifier="sleep", exec_host="exec1"):
    from pywps import dblog

    store.create(uuid, identifier, now=T0)
    if sge_id:
        store.set_submitted(uuid, sge_id, f"wps-{identifier}-{uuid[:8]}", "-l h_rt=60", now=T0)
    if started:
        store.transition(uuid, "started", "PyWPS Process started", exec_host=exec_host, now=T0)
    # PyWPS's own row, as Service.call logs it
    session = dblog.get_session()
    session.add(dblog.ProcessInstance(uuid=uuid, pid=1, operation="execute", version="1.0.0",
                                      time_start=T0, identifier=identifier, status=2, percent_done=20))
    session.commit()
    session.close()


def pywps_status(uuid):
    from pywps import dblog

    session = dblog.get_session()
    try:
        row = session.query(dblog.ProcessInstance).filter_by(uuid=uuid).one()
        return row.status, row.message
    finally:
        session.close()


def assert_failed(env, store, uuid, *words):
    assert store.get(uuid).state == "failed"
    doc = env.status_doc(uuid)
    assert status_of(doc) == "ProcessFailed"
    text = status_text(doc)
    for word in words:
        assert word in text, text
    status, message = pywps_status(uuid)
    assert status == 5 and all(w in message for w in words)


def test_deleted_job(world):
    env, store, source, clock, rec = world
    add_job(store, "job-deleted", "101")
    source.jobs["101"] = JobInfo(SgeState.FINISHED, exit_status=137, failed=100, deleted_by="admin@master",
                                 wallclock=5, h_rt=60)
    clock.advance(10)
    assert rec.run_once().failed == 1
    assert_failed(env, store, "job-deleted", "Grid Engine job 101", "deleted (qdel) by admin@master",
                  "after 5 s")


def test_killed_by_h_rt(world):
    env, store, source, clock, rec = world
    add_job(store, "job-hrt", "102")
    source.jobs["102"] = JobInfo(SgeState.FINISHED, exit_status=137, failed=100, wallclock=60.4, h_rt=60,
                                 hostname="exec2")
    clock.advance(70)
    rec.run_once()
    assert_failed(env, store, "job-hrt", "SIGKILL", "exceeded its wall-clock limit h_rt of 60 s", "exec2",
                  "after 60 s")
    record = store.get("job-hrt")
    assert (record.exit_status, record.wallclock, record.exec_host) == (137, 60.4, "exec2")


def test_host_lost_is_failed_within_a_minute(world):
    env, store, source, clock, rec = world
    add_job(store, "job-host", "103", exec_host="exec3")
    source.jobs["103"] = JobInfo(SgeState.RUNNING)  # qmaster still shows it running on the dead host
    store.heartbeat("job-host", now=T0 + dt.timedelta(seconds=10))  # last sign of life
    for _ in range(4):  # passes every 15 s after the host died at ~T0+10
        clock.advance(15)
        rec.run_once()
        if store.get("job-host").state == "failed":
            break
    assert clock.now - (T0 + dt.timedelta(seconds=10)) <= dt.timedelta(seconds=60)
    assert_failed(env, store, "job-host", "Lost contact", "exec3")
    assert source.deleted == ["103"]


def test_launcher_crashed(world):
    env, store, source, clock, rec = world
    add_job(store, "job-crash", "104")
    source.jobs["104"] = JobInfo(SgeState.FINISHED, exit_status=1, failed=0, hostname="exec1")
    rec.run_once()
    assert_failed(env, store, "job-crash", "exited with status 1", "on exec1", "without reporting a result")


def test_launcher_crashed_before_reporting_start(world):
    env, store, source, clock, rec = world
    add_job(store, "job-early", "105", started=False, identifier="hello")
    source.jobs["105"] = JobInfo(SgeState.FINISHED, exit_status=0, failed=0)
    rec.run_once()
    assert_failed(env, store, "job-early", "without the job reporting a result")


def test_deleted_while_queued_waits_for_accounting_then_fails(world):
    env, store, source, clock, rec = world
    add_job(store, "job-gone", "106", started=False)
    # not in source: unknown to Grid Engine, no accounting record
    rec.run_once()
    assert store.get("job-gone").state == "accepted"
    clock.advance(15)
    rec.run_once()
    assert_failed(env, store, "job-gone", "no longer known to Grid Engine")
    assert clock.now - T0 <= dt.timedelta(seconds=60)


def test_error_state_job_is_failed_and_removed(world):
    env, store, source, clock, rec = world
    add_job(store, "job-eqw", "107", started=False)
    source.jobs["107"] = JobInfo(SgeState.ERROR, reason="can't chdir to /srv/wps/workdir/x")
    rec.run_once()
    assert_failed(env, store, "job-eqw", "error state", "chdir")
    assert source.deleted == ["107"]


def test_never_submitted(world):
    env, store, source, clock, rec = world
    add_job(store, "job-nosub", sge_id=None, started=False)
    rec.run_once()
    assert store.get("job-nosub").state == "accepted"
    clock.advance(121)
    rec.run_once()
    assert_failed(env, store, "job-nosub", "never handed to Grid Engine")


@pytest.mark.parametrize("state", [SgeState.QUEUED, SgeState.HELD, SgeState.SUSPENDED, SgeState.RUNNING])
def test_waiting_and_healthy_jobs_are_untouched(world, state):
    env, store, source, clock, rec = world
    add_job(store, "job-ok", "108")
    source.jobs["108"] = JobInfo(state)
    for _ in range(10):
        clock.advance(15)
        store.heartbeat("job-ok", now=clock.now)
        assert rec.run_once().failed == 0
    assert store.get("job-ok").state == "started"
    assert not (env.outputs / "job-ok.xml").exists()
    assert source.deleted == []


def test_long_queued_job_is_untouched(world):
    env, store, source, clock, rec = world
    add_job(store, "job-q", "109", started=False)
    source.jobs["109"] = JobInfo(SgeState.QUEUED)
    clock.advance(3600)
    rec.run_once()
    assert store.get("job-q").state == "accepted"


def test_finished_ok_is_untouched(world):
    env, store, source, clock, rec = world
    add_job(store, "job-done", "110")
    store.transition("job-done", "succeeded", "done")
    (env.outputs / "job-done.xml").write_text("<succeeded/>")
    source.jobs["110"] = JobInfo(SgeState.FINISHED, exit_status=0, failed=0)
    assert rec.run_once().checked == 0
    assert store.get("job-done").state == "succeeded"
    assert (env.outputs / "job-done.xml").read_text() == "<succeeded/>"


def test_launcher_finishing_during_the_pass_wins(world):
    env, store, source, clock, rec = world
    add_job(store, "job-race", "111")
    (env.outputs / "job-race.xml").write_text("<succeeded/>")

    class RacingSource(TableSource):
        def job_info(self, sge_job_id):
            # the launcher reports success just after the reconciler listed the job
            store.transition("job-race", "succeeded", "done")
            return JobInfo(SgeState.FINISHED, exit_status=0, failed=0)

    rec.source = RacingSource()
    assert rec.run_once().failed == 0
    assert store.get("job-race").state == "succeeded"
    assert (env.outputs / "job-race.xml").read_text() == "<succeeded/>"


def test_job_seen_again_resets_grace(world):
    env, store, source, clock, rec = world
    add_job(store, "job-blip", "112")
    rec.run_once()  # unknown: grace starts
    source.jobs["112"] = JobInfo(SgeState.RUNNING)
    clock.advance(10)
    store.heartbeat("job-blip", now=clock.now)
    rec.run_once()
    assert store.get("job-blip").gone_since is None
    del source.jobs["112"]
    clock.advance(10)
    store.heartbeat("job-blip", now=clock.now)
    rec.run_once()
    assert store.get("job-blip").state == "started"


def test_command_line_once(world, capsys):
    env, store, source, clock, rec = world
    add_job(store, "job-cli", "113")
    source.jobs["113"] = JobInfo(SgeState.FINISHED, exit_status=2, failed=0)
    assert main(["--config", str(env.cfg), "--once"], source=source) == 0
    assert store.get("job-cli").state == "failed"


QACCT = """\
==============================================================
qname        all.q
hostname     exec1
owner        wps
jobname      wps-sleep-1a2b3c4d
jobnumber    42
qsub_time    Sun Mar  1 08:00:00 2026
failed       0
exit_status  1
ru_wallclock 3s
category     -q all.q
maxvmem      10.000M
==============================================================
qname        all.q
hostname     exec2
owner        wps
jobname      wps-sleep-1a2b3c4d
jobnumber    42
failed       100 : assumedly after job
exit_status  137                  (Killed)
ru_wallclock 61.012s
category     -q all.q -l h_rt=60,h_vmem=512M
maxvmem      200.5M
deleted_by   NONE
"""


def test_parse_qacct_takes_last_record():
    info = info_from_qacct(parse_qacct(QACCT))
    assert info.state == SgeState.FINISHED
    assert (info.exit_status, info.failed, info.failed_reason) == (137, 100, "assumedly after job")
    assert (info.wallclock, info.h_rt, info.hostname, info.deleted_by) == (61.012, 60.0, "exec2", None)
    assert info.maxvmem == "200.5M"


def test_parse_qacct_h_rt_in_clock_format():
    fields = parse_qacct("qname all.q\ncategory -l h_rt=01:00:00\nexit_status 0\nru_wallclock 10\n")
    info = info_from_qacct(fields)
    assert (info.h_rt, info.wallclock, info.exit_status) == (3600.0, 10.0, 0)


def test_failed_document_write_is_retried_until_it_says_so(world):
    """The row is claimed first; a document write that fails is repaired on a later pass."""
    env, store, source, clock, rec = world
    add_job(store, "job-unwritten", "103")
    source.jobs["103"] = JobInfo(SgeState.FINISHED, exit_status=137, failed=100, deleted_by="admin@master")
    real_writer, calls = rec.write_failed, []

    def flaky(job, reason):
        calls.append(job.uuid)
        if len(calls) <= 2:
            raise OSError(5, "Input/output error")  # the shared tree hiccups, twice
        real_writer(job, reason)

    rec.write_failed = flaky
    clock.advance(10)
    assert rec.run_once().repaired == 0  # claimed, then both writes of this pass failed
    assert store.get("job-unwritten").state == "failed"
    assert not (env.outputs / "job-unwritten.xml").exists()
    assert rec.run_once().repaired == 1
    assert len(calls) == 3
    assert_failed(env, store, "job-unwritten", "deleted (qdel) by admin@master")
    assert rec.run_once().repaired == 0  # the document agrees now: nothing more to do


def test_repair_leaves_old_failures_alone(world):
    env, store, source, clock, rec = world
    add_job(store, "job-old", "104")
    assert store.transition("job-old", "failed", "long ago", now=T0)
    clock.advance(2 * 3600)
    assert rec.run_once().repaired == 0
    assert not (env.outputs / "job-old.xml").exists()


class FlakyDatabaseClock(Clock):
    """The database's clock, through a database that can be down."""

    down = False

    def __call__(self) -> dt.datetime:
        if self.down:
            from sqlalchemy.exc import OperationalError

            raise OperationalError("SELECT now()", {}, Exception("connection refused"))
        return self.now


def test_database_outage_longer_than_the_heartbeat_timeout_fails_no_job(world):
    """Heartbeats go stale while nobody can write them; after the outage every launcher
    gets a whole heartbeat timeout to beat again."""
    env, store, source, _, rec = world
    clock = rec.clock = FlakyDatabaseClock(T0)
    add_job(store, "job-healthy", "105")
    add_job(store, "job-dead", "106", exec_host="exec2")
    source.jobs["105"] = source.jobs["106"] = JobInfo(SgeState.RUNNING)
    store.heartbeat("job-healthy", now=T0)
    store.heartbeat("job-dead", now=T0)
    assert rec.run_once().failed == 0
    clock.down = True
    for _ in range(6):  # 90 s without a database
        clock.advance(15)
        assert rec.run_once().skipped == "database unreachable"
    clock.down = False
    clock.advance(15)
    assert rec.run_once().failed == 0  # heartbeats 105 s old, but the database was just back
    store.heartbeat("job-healthy", now=clock.now + dt.timedelta(seconds=5))  # its launcher beats again
    clock.advance(15)
    assert rec.run_once().failed == 0
    clock.advance(15)
    assert rec.run_once().failed == 1  # 30 s of reachable database without a beat from exec2
    assert store.get("job-healthy").state == "started"
    assert_failed(env, store, "job-dead", "Lost contact", "exec2")


def test_only_one_reconciler_leads_on_sqlite_every_caller_leads(world):
    _, store, _, _, _ = world
    first, second = store.leader_lock("x"), store.leader_lock("x")
    assert first.acquire() and second.acquire()  # no advisory locks on SQLite: a single host
    first.release()
    second.release()


def test_killed_past_its_memory_limit(world):
    env, store, source, clock, rec = world
    add_job(store, "job-vmem", "107")
    source.jobs["107"] = JobInfo(SgeState.FINISHED, exit_status=137, failed=100, wallclock=3, h_rt=60,
                                 h_vmem="512M", maxvmem="511.8M", cpu=2.5, hostname="exec1")
    rec.run_once()
    assert_failed(env, store, "job-vmem", "exceeded its memory limit h_vmem of 512M", "peak 511.8M", "on exec1")
    record = store.get("job-vmem")
    assert (record.cpu, record.peak_memory) == (2.5, 511.8 * 2**20)


def test_killed_by_a_signal(world):
    env, store, source, clock, rec = world
    add_job(store, "job-term", "108")
    source.jobs["108"] = JobInfo(SgeState.FINISHED, exit_status=143, failed=0, wallclock=12, hostname="exec2")
    rec.run_once()
    assert_failed(env, store, "job-term", "killed by signal 15 (SIGTERM) on exec2 after 12 s")


def test_launcher_that_could_not_record_its_result(world):
    env, store, source, clock, rec = world
    add_job(store, "job-nodb", "109")
    source.jobs["109"] = JobInfo(SgeState.FINISHED, exit_status=4, failed=0, hostname="exec1")
    rec.run_once()
    assert_failed(env, store, "job-nodb", "database stayed unreachable")


def test_accounting_fields_for_limits_and_usage():
    from pywps_gridengine.reconciler import memory_bytes

    info = info_from_qacct({"category": "-q wps.q -l h_rt=30,h_vmem=256M", "cpu": "2.130s", "maxvmem": "255.9M",
                            "ru_wallclock": "31s", "exit_status": "137", "failed": "100 : assumedly after job",
                            "hostname": "exec2"})
    assert (info.h_rt, info.h_vmem, info.cpu, info.wallclock) == (30, "256M", 2.13, 31)
    assert info.usage().peak_memory == 255.9 * 2**20
    assert (memory_bytes("2G"), memory_bytes("1.5k"), memory_bytes("100"), memory_bytes("NONE")) == \
        (2 * 2**30, 1536.0, 100.0, None)


def test_host_lost_between_dispatch_and_start_is_failed(world):
    """Grid Engine dispatched the job to a host that died before the launcher wrote its start:
    the qmaster shows it running for as long as it waits for the host; the job must not stay
    Accepted for that long."""
    env, store, source, clock, rec = world
    add_job(store, "job-transit", "120", started=False)
    source.jobs["120"] = JobInfo(SgeState.RUNNING)
    for _ in range(8):  # 0 to 105 s: a launcher on a loaded host may still be starting
        assert rec.run_once().failed == 0
        clock.advance(15)
    assert rec.run_once().failed == 1  # submit_timeout (120 s) since first seen running
    assert_failed(env, store, "job-transit", "Lost contact", "Grid Engine job 120",
                  "launcher never reported the start")
    assert source.deleted == ["120"]


def test_launcher_starting_slowly_is_left_alone(world):
    env, store, source, clock, rec = world
    add_job(store, "job-slow", "121", started=False)
    source.jobs["121"] = JobInfo(SgeState.RUNNING)
    rec.run_once()
    clock.advance(60)  # longer than heartbeat_timeout: a start is not a heartbeat
    assert rec.run_once().failed == 0
    clock.advance(50)
    store.transition("job-slow", "started", "PyWPS Process started", exec_host="exec1", now=clock.now)
    store.heartbeat("job-slow", now=clock.now)
    for _ in range(2):
        clock.advance(10)
        assert rec.run_once().failed == 0
    assert store.get("job-slow").state == "started"
    assert not rec.running_unstarted


def test_queued_for_long_then_dispatched_gets_the_whole_grace(world):
    """The wait starts when Grid Engine runs the job, not when it was submitted."""
    env, store, source, clock, rec = world
    add_job(store, "job-waited", "122", started=False)
    source.jobs["122"] = JobInfo(SgeState.QUEUED)
    clock.advance(3600)
    rec.run_once()
    source.jobs["122"] = JobInfo(SgeState.RUNNING)
    assert rec.run_once().failed == 0
    clock.advance(115)
    assert rec.run_once().failed == 0
    assert store.get("job-waited").state == "accepted"


def test_unstarted_wait_survives_no_database_outage(world):
    """A launcher that could not write its start while the database was down gets a whole
    timeout once the database is back."""
    env, store, source, _, rec = world
    clock = rec.clock = FlakyDatabaseClock(T0)
    add_job(store, "job-dbwait", "123", started=False)
    source.jobs["123"] = JobInfo(SgeState.RUNNING)
    assert rec.run_once().failed == 0
    clock.down = True
    for _ in range(4):
        clock.advance(15)
        rec.run_once()
    clock.down = False
    clock.advance(15)
    assert rec.run_once().failed == 0  # first seen 75 s ago, but the database was just back
    clock.advance(105)
    assert rec.run_once().failed == 0
    clock.advance(15)
    assert rec.run_once().failed == 1  # 120 s of reachable database without a start


# -- repair of succeeded jobs' documents (Reconciler.repair_succeeded) ----------------------------

SUCCEEDED_DOC = """<?xml version="1.0" encoding="UTF-8"?>
<wps:ExecuteResponse xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1">
<wps:Status creationTime="2026-03-01T08:00:05Z">
<wps:ProcessSucceeded>done \u00e9t\u00e9</wps:ProcessSucceeded></wps:Status>
<wps:ProcessOutputs><wps:Output><ows:Identifier>output</ows:Identifier>
<wps:Data><wps:LiteralData>{value}</wps:LiteralData></wps:Data></wps:Output></wps:ProcessOutputs>
</wps:ExecuteResponse>
"""


def succeed(env, store, uuid, value="42"):
    """What the launcher does: the row made Succeeded, its document kept and written in one transaction."""
    from pywps_gridengine.status import atomic_write

    text = SUCCEEDED_DOC.format(value=value)
    path = env.outputs / f"{uuid}.xml"
    assert store.record(uuid, "succeeded", "done", 100, now=T0 + dt.timedelta(seconds=5), document=text,
                        then=lambda: atomic_write(path, text))
    return path, text


@pytest.fixture
def repairing(world):
    from pywps_gridengine.reconciler import DocumentFiles

    env, store, source, clock, rec = world
    rec.documents = DocumentFiles(str(env.outputs))
    clock.advance(10)
    return env, store, rec


def test_succeeded_document_that_disagrees_is_restored(repairing):
    """The launcher's last resort (ProcessFailed "could not record its result") over a row that
    says Succeeded: the commit had landed, its acknowledgement was lost. The row decides."""
    from pywps_gridengine.compat import write_failed_document

    env, store, rec = repairing
    add_job(store, "job-ok", "110")
    path, text = succeed(env, store, "job-ok")
    assert rec.run_once().repaired == 0  # agrees
    write_failed_document(env.config, "sleep", "job-ok", None, "110", "The job could not record its result: ...")
    assert status_of(env.status_doc("job-ok")) == "ProcessFailed"
    result = rec.run_once()
    assert (result.repaired, result.unrepairable) == (1, 0)
    assert path.read_text(encoding="utf-8") == text  # byte for byte, outputs included
    assert store.get("job-ok").state == "succeeded"
    assert rec.run_once().repaired == 0


def test_succeeded_document_lost_or_damaged_is_restored(repairing):
    env, store, rec = repairing
    add_job(store, "job-lost", "111")
    add_job(store, "job-damaged", "112")
    lost, lost_text = succeed(env, store, "job-lost", "1")
    damaged, damaged_text = succeed(env, store, "job-damaged", "2")
    lost.unlink()
    damaged.write_text(damaged_text[:50], encoding="utf-8")
    assert rec.run_once().repaired == 2
    assert (lost.read_text(encoding="utf-8"), damaged.read_text(encoding="utf-8")) == (lost_text, damaged_text)


def test_same_document_written_again_is_left_alone(repairing):
    env, store, rec = repairing
    add_job(store, "job-same", "113")
    path, text = succeed(env, store, "job-same")
    assert rec.run_once().repaired == 0
    path.write_text(text, encoding="utf-8")  # a new file (inode, time) with the same bytes
    assert rec.run_once().repaired == 0


def test_succeeded_document_too_large_to_keep_is_reported_not_rewritten(repairing, monkeypatch, caplog):
    from pywps_gridengine import jobs

    env, store, rec = repairing
    monkeypatch.setattr(jobs, "KEEP_DOCUMENT_BYTES", 100)
    add_job(store, "job-big", "114")
    path, _ = succeed(env, store, "job-big")
    [kept] = store.succeeded_documents_since(T0)
    assert not kept.kept and store.kept_document("job-big") is None
    assert rec.run_once().unrepairable == 0
    path.write_text("<damaged/>", encoding="utf-8")
    with caplog.at_level("ERROR", logger="PYWPS"):
        assert rec.run_once().unrepairable == 1
        assert rec.run_once().unrepairable == 1
    assert path.read_text() == "<damaged/>"
    assert [r.message for r in caplog.records if "job-big" in r.message and "cannot be restored" in r.message] \
        and len([r for r in caplog.records if "job-big" in r.message]) == 1  # reported once, not every pass


def test_only_recent_succeeded_jobs_and_refused_records_keep_nothing(repairing):
    env, store, rec = repairing
    add_job(store, "job-old-ok", "115")
    path, _ = succeed(env, store, "job-old-ok")
    # A second final record is refused by the row: it keeps nothing and writes nothing.
    assert not store.record("job-old-ok", "succeeded", "again", 100, document="<other/>",
                            then=lambda: path.write_text("<other/>"))
    assert store.kept_document("job-old-ok") == SUCCEEDED_DOC.format(value="42")
    rec.clock.advance(2 * 3600)
    path.unlink()
    assert rec.run_once().repaired == 0  # out of the repair window
    assert not path.exists()


def test_a_failed_write_keeps_no_document(repairing):
    """The document row is written in the row's transaction: a write that fails rolls both back."""
    env, store, rec = repairing
    add_job(store, "job-unwritable", "116")

    def fails() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        store.record("job-unwritable", "succeeded", "done", 100, document="<doc/>", then=fails)
    assert store.get("job-unwritable").state == "started"
    assert store.kept_document("job-unwritable") is None and store.succeeded_documents_since(T0) == []


def test_kept_document_goes_with_its_rows(repairing):
    from pywps_gridengine.jobs import Cutoff

    env, store, rec = repairing
    add_job(store, "job-cleaned", "117")
    succeed(env, store, "job-cleaned")
    store.delete_ended("job-cleaned", Cutoff(T0 - dt.timedelta(days=1)))  # not ended before it: kept
    assert store.kept_document("job-cleaned") is not None
    store.delete_ended("job-cleaned", Cutoff(T0 + dt.timedelta(days=1)))
    assert store.get("job-cleaned") is None and store.kept_document("job-cleaned") is None


def test_failed_document_of_a_job_whose_work_directory_is_gone(repairing):
    """A work directory already removed (lost before the job could start, or cleaned up) neither
    stops the ProcessFailed document nor comes back: PyWPS's setter would create it again."""
    from pywps_gridengine.compat import write_failed_document

    env, store, rec = repairing
    gone = env.workdir / "pywps_process_gone"
    write_failed_document(env.config, "sleep", "job-nowd", str(gone), "120", "Grid Engine could not start it.")
    assert status_of(env.status_doc("job-nowd")) == "ProcessFailed"
    assert not gone.exists()


def test_dispatched_host_read_from_qstat_xml():
    from pywps_gridengine.reconciler import dispatched_host

    def running(number: str, queue: str) -> str:
        return (f'<job_list state="running"><JB_job_number>{number}</JB_job_number><JB_name>pywps-x</JB_name>'
                f"<state>r</state><queue_name>{queue}</queue_name><slots>1</slots></job_list>")

    text = (f"<?xml version='1.0'?><job_info><queue_info>{running('5', 'all.q@exec2')}"
            f"{running('47', 'wps.q@exec1.cluster.example')}</queue_info><job_info></job_info></job_info>")
    assert dispatched_host(text, "47") == "exec1.cluster.example"
    assert dispatched_host(text, "5") == "exec2"
    assert dispatched_host(text, "4") is None  # not running (any more): no host
    assert dispatched_host(f"<job_info>{running('9', 'all.q')}</job_info>", "9") is None
    assert dispatched_host(f"<job_info>{running('9', 'all.q@-x y')}</job_info>", "9") is None
    assert dispatched_host("error: commlib error", "9") is None


def test_reconciler_counts_its_verdicts(world):
    """Each job it fails is counted once, by cause (pywps_gridengine_reconciler_verdicts_total)."""
    env, store, source, clock, rec = world
    add_job(store, "killed", "101")
    source.jobs["101"] = JobInfo(SgeState.FINISHED, exit_status=137, failed=100, wallclock=60.4, h_rt=60)

    def count() -> float:
        return REGISTRY.get_sample_value("pywps_gridengine_reconciler_verdicts_total",
                                         {"verdict": "failed", "cause": "wallclock_limit"}) or 0.0

    before = count()
    clock.advance(70)
    rec.run_once()
    rec.run_once()  # nothing more to fail
    assert count() == before + 1


def test_a_dismissed_job_grid_engine_still_runs_is_deleted(world):
    """A dismiss whose deletion failed (qmaster away): the row is Dismissed, the job still holds its slot."""
    env, store, source, clock, rec = world
    add_job(store, "job-dismissed", "301")
    add_job(store, "job-dismissed-gone", "302")
    source.jobs["301"] = JobInfo(SgeState.RUNNING)
    for uuid in ("job-dismissed", "job-dismissed-gone"):
        assert store.transition(uuid, "dismissed", "dismissed by the client", now=T0)
    clock.advance(10)
    result = rec.run_once()
    assert result.stopped == 1 and result.failed == 0 and source.deleted == ["301"]
    assert store.get("job-dismissed").state == "dismissed"  # still dismissed, never failed
    # its status document (never written: the dismiss stopped before) is repaired to ProcessFailed
    doc = env.status_doc("job-dismissed")
    assert status_of(doc) == "ProcessFailed" and "dismissed by the client" in status_text(doc)
    assert rec.run_once().stopped == 0 and source.deleted == ["301"]
