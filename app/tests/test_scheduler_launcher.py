"""Asynchronous Execute in scheduler mode: submission (DRMAA replaced by a recording
submitter), then the exec-host launcher run in this process, as Grid Engine would."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from wpstest import (
    NS,
    app_client,
    literal_output,
    output_element,
    status_of,
    status_text,
    uuid_from_status_location,
    xml,
)

from pywps_gridengine import launcher
from pywps_gridengine.config import ConfigError, Settings
from pywps_gridengine.jobs import JobStore
from pywps_gridengine.scheduler import GridEngineScheduler, JobSpec, build_job_spec, job_name


class RecordingSubmitter:
    """Stands in for DRMAA: keeps the job templates and hands out job ids."""

    def __init__(self, first_id: int = 4242, error: Exception | None = None) -> None:
        self.specs: list[JobSpec] = []
        self.next_id = first_id
        self.error = error

    def submit(self, spec: JobSpec) -> str:
        if self.error:
            raise self.error
        self.specs.append(spec)
        self.next_id += 1
        return str(self.next_id - 1)


@pytest.fixture
def cluster(make_env, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the launcher changes into (then removes) job work dirs
    env = make_env(mode="scheduler", extra="[gridengine]\nqueue = wps.q\nh_vmem = 1G\n\n"
                                           "[gridengine:sleep]\nh_rt = 00:02:00\n")
    submitter = RecordingSubmitter()
    monkeypatch.setattr(GridEngineScheduler, "submitter", submitter)
    return env, app_client(env.config), submitter


def submit(client, identifier, datainputs="", **params):
    query = {"service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": identifier,
             "storeExecuteResponse": "true", "status": "true"}
    if datainputs:
        query["datainputs"] = datainputs
    query.update(params)
    resp = client.get("/wps", query_string=query)
    assert resp.status_code == 200, resp.data
    return xml(resp.data)


def run_on_exec_host(env, spec: JobSpec, monkeypatch) -> int:
    """What sge_execd does: start the remote command with the job's environment and args."""
    monkeypatch.setenv("JOB_ID", "4242")
    for key, value in spec.environment.items():
        if key != "PATH":
            monkeypatch.setenv(key, value)
    return launcher.main(spec.args)


def test_async_execute_submits_and_reports_sge_job(cluster):
    env, client, submitter = cluster
    doc = submit(client, "sleep", "delay=0")
    assert status_of(doc) == "ProcessAccepted"
    assert "Grid Engine job 4242" in status_text(doc)
    uuid = uuid_from_status_location(doc)
    assert doc.get("statusLocation") == f"http://wps.test/wpsoutputs/{uuid}.xml"
    on_disk = env.status_doc(uuid)
    assert status_of(on_disk) == "ProcessAccepted" and "Grid Engine job 4242" in status_text(on_disk)

    [spec] = submitter.specs
    assert spec.remote_command == str(env.root / "bin" / "pywps-gridengine-launcher")
    assert spec.args[:2] == ["--config", str(env.cfg)]
    dump = Path(spec.args[2])
    assert dump.is_file() and dump.parent == Path(spec.working_directory)
    assert dump.parent.parent == env.workdir
    assert spec.job_name == f"wps-sleep-{uuid.replace('-', '')[:8]}"
    assert spec.native_specification == "-q wps.q -l h_rt=00:02:00,h_vmem=512M"
    assert spec.environment["PYWPS_CFG"] == str(env.cfg)
    assert spec.output_path == os.path.join(spec.working_directory, f"{uuid}.out")

    record = JobStore.for_config(env.config).get(uuid)
    assert (record.state, record.sge_job_id, record.job_name) == ("accepted", "4242", spec.job_name)
    assert record.native_specification == spec.native_specification


def test_launcher_runs_job_to_success(cluster, monkeypatch):
    env, client, submitter = cluster
    uuid = uuid_from_status_location(submit(client, "sleep", "delay=0"))
    assert run_on_exec_host(env, submitter.specs[0], monkeypatch) == 0
    doc = env.status_doc(uuid)
    assert status_of(doc) == "ProcessSucceeded", status_text(doc)
    assert literal_output(doc, "sleep_output") == "done sleeping"
    assert "Grid Engine job 4242" in status_text(doc)
    record = JobStore.for_config(env.config).get(uuid)
    assert record.state == "succeeded" and record.exec_host and record.finished_at
    assert record.wallclock is not None and record.cpu > 0 and record.peak_memory > 2**20  # its own usage
    # the WPS 1.0 client reads the same figures in the final document
    assert f"ran on {record.exec_host}: wallclock " in status_text(doc) and " MiB]" in status_text(doc)
    from pywps import dblog

    session = dblog.get_session()
    row = session.query(dblog.ProcessInstance).filter_by(uuid=uuid).one()
    assert (row.status, row.percent_done) == (4, 100)
    session.close()


@pytest.mark.parametrize(("choice", "expect_reference", "expect_mime"), [
    ("output=@asReference=false@mimeType=text/csv", False, "text/csv"),
    ("output=@asReference=true@mimeType=text/csv", True, "text/csv"),
    ("output=@asReference=false", False, "text/plain"),
])
def test_client_output_choices_are_honoured_on_exec_host(cluster, monkeypatch, choice, expect_reference, expect_mime):
    env, client, submitter = cluster
    uuid = uuid_from_status_location(submit(client, "textfile", "lines=2", responsedocument=choice))
    assert run_on_exec_host(env, submitter.specs[0], monkeypatch) == 0
    doc = env.status_doc(uuid)
    assert status_of(doc) == "ProcessSucceeded", status_text(doc)
    out = output_element(doc, "output")
    if expect_reference:
        ref = out.find("wps:Reference", NS)
        assert ref is not None and ref.get("mimeType") == expect_mime
        assert ref.get("href").endswith(".csv")
    else:
        data = out.find(".//wps:ComplexData", NS)
        assert data is not None, "output came back by reference although the client asked for it inline"
        assert data.get("mimeType") == expect_mime
        assert data.text.startswith("n,square\n" if expect_mime == "text/csv" else "1 squared is 1")


def test_failing_process_fails_with_its_message(cluster, monkeypatch):
    env, client, submitter = cluster
    uuid = uuid_from_status_location(submit(client, "fail", "message=Broken on purpose."))
    assert run_on_exec_host(env, submitter.specs[0], monkeypatch) == 0
    doc = env.status_doc(uuid)
    assert status_of(doc) == "ProcessFailed"
    assert "Broken on purpose." in status_text(doc)
    assert JobStore.for_config(env.config).get(uuid).state == "failed"


def test_wordcount_json_on_exec_host(cluster, monkeypatch):
    env, client, submitter = cluster
    uuid = uuid_from_status_location(submit(client, "wordcount", "text=to be or not to be"))
    assert run_on_exec_host(env, submitter.specs[0], monkeypatch) == 0
    data = output_element(env.status_doc(uuid), "output").find(".//wps:ComplexData", NS)
    assert json.loads(data.text)["top"][:2] == [["be", 2], ["to", 2]]


def test_submission_failure_is_a_503_and_leaves_no_job(cluster, monkeypatch):
    """Admission control (test_admission.py has the details): nothing was queued, the client retries later."""
    env, client, _ = cluster
    monkeypatch.setattr(GridEngineScheduler, "submitter", RecordingSubmitter(error=RuntimeError("qmaster unreachable")))
    resp = client.get("/wps", query_string={"service": "WPS", "request": "Execute", "version": "1.0.0",
                                            "identifier": "sleep", "datainputs": "delay=0",
                                            "storeExecuteResponse": "true", "status": "true"})
    assert resp.status_code == 503, resp.data
    assert xml(resp.data).find("ows:Exception", NS).get("exceptionCode") == "ServerBusy"
    assert JobStore.for_config(env.config).all() == []


def test_refused_submission_tells_the_client_why_and_nothing_secret(cluster, monkeypatch):
    """The cause is in the 503's ExceptionText, shortened and cleaned; the whole of it only in the log."""
    env, client, _ = cluster
    cause = ("code 2: failed receiving gdi request response for mid=1 (got syncron message receive timeout error)"
             " via postgresql+psycopg2://wps:s3cret@db.example.org:5432/wps, password=s3cret wps:s3cret@db\x07\n"
             'Traceback (most recent call last):\n  File "/opt/wps/venv/lib/python3/drmaa/session.py"')
    monkeypatch.setattr(GridEngineScheduler, "submitter", RecordingSubmitter(error=RuntimeError(cause)))
    resp = client.get("/wps", query_string={"service": "WPS", "request": "Execute", "version": "1.0.0",
                                            "identifier": "sleep", "datainputs": "delay=0",
                                            "storeExecuteResponse": "true", "status": "true"})
    assert resp.status_code == 503, resp.data
    assert resp.headers["Retry-After"] == "30"
    exception = xml(resp.data).find("ows:Exception", NS)
    assert exception.get("exceptionCode") == "ServerBusy"
    text = exception.find("ows:ExceptionText", NS).text
    assert text.startswith("The service cannot accept jobs at the moment: the batch system does not accept jobs "
                           "(RuntimeError: code 2: failed receiving gdi request response for mid=1"), text
    assert text.endswith("Try again later."), text
    for secret in ("s3cret", "postgresql", "Traceback", "/opt/wps", "\x07"):
        assert secret not in text, (secret, text)
    assert JobStore.for_config(env.config).all() == []


@pytest.mark.parametrize(("error", "cause"), [
    (RuntimeError("code 17: error: no suitable queues"), "RuntimeError: code 17: error: no suitable queues"),
    (OSError(28, "No space left on device", "/srv/wps/workdir/pywps_process_x/job_1.dump"),
     "OSError: No space left on device: job_1.dump"),
    (RuntimeError("cannot read /var/lib/gridengine/default/common/act_qmaster: gone"),
     "RuntimeError: cannot read .../act_qmaster: gone"),
    (RuntimeError("token=abc123 secret: xyz PASSWORD = hunter2 ok"),
     "RuntimeError: token=*** secret: *** PASSWORD = *** ok"),
    (RuntimeError("\n\n  bell\x07 and\x1b[0m escape\nsecond line"), "RuntimeError: bell and [0m escape"),
    (RuntimeError(""), "RuntimeError"),
    (RuntimeError('code 2: unable to send message to qmaster using port 6444 on host "qmaster": got send error'),
     "RuntimeError: code 2: unable to send message to qmaster using port *** on host ***: got send error"),
    (RuntimeError("could not connect to server at 10.213.1.5:5432, host=db1 refused"),
     "RuntimeError: could not connect to server at <address>, host=*** refused"),
    (RuntimeError("no suitable host found for the job"), "RuntimeError: no suitable host found for the job"),
])
def test_client_cause_is_short_and_safe(error, cause):
    from pywps_gridengine.scheduler import client_cause

    assert client_cause(error) == cause


def test_client_cause_is_bounded():
    from pywps_gridengine.scheduler import CAUSE_LENGTH, client_cause

    cause = client_cause(RuntimeError("x" * 5000))
    assert len(cause) == CAUSE_LENGTH and cause.endswith("...")


def test_launcher_does_not_resurrect_a_job_the_reconciler_failed(cluster, monkeypatch):
    env, client, submitter = cluster
    uuid = uuid_from_status_location(submit(client, "sleep", "delay=0"))
    assert JobStore.for_config(env.config).transition(uuid, "failed", "lost with its host")
    assert run_on_exec_host(env, submitter.specs[0], monkeypatch) == 3
    assert status_of(env.status_doc(uuid)) != "ProcessSucceeded"
    assert JobStore.for_config(env.config).get(uuid).state == "failed"


def test_grid_engine_queues_not_pywps(cluster):
    """With parallelprocesses = 1 PyWPS would store the 2nd and 3rd request in its own
    queue (lost on the exec host) and refuse synchronous requests as busy."""
    from pywps import configuration

    env, client, submitter = cluster
    configuration.CONFIG.set("server", "parallelprocesses", "1")
    configuration.CONFIG.set("server", "maxprocesses", "1")
    docs = [submit(client, "sleep", "delay=0") for _ in range(3)]
    assert [status_of(d) for d in docs] == ["ProcessAccepted"] * 3
    assert all("Grid Engine job" in status_text(d) for d in docs)
    assert len(submitter.specs) == 3
    resp = client.get("/wps", query_string={"service": "WPS", "request": "Execute", "version": "1.0.0",
                                            "identifier": "hello", "datainputs": "name=Friday"})
    assert literal_output(xml(resp.data), "output") == "Hello Friday"


def test_synchronous_request_runs_on_web_host(cluster):
    env, client, submitter = cluster
    resp = client.get("/wps", query_string={"service": "WPS", "request": "Execute", "version": "1.0.0",
                                            "identifier": "hello", "datainputs": "name=Friday"})
    assert literal_output(xml(resp.data), "output") == "Hello Friday"
    assert submitter.specs == []


def test_job_names_are_valid_for_grid_engine():
    assert job_name("wps", "sleep", "1a2b3c4d-0000-1111") == "wps-sleep-1a2b3c4d"
    assert job_name("wps", "a/b:c@d*e?", "ffffffff-1") == "wps-a_b_c_d_e-ffffffff"
    long = job_name("wps", "x" * 200, "12345678-9")
    assert len(long) <= 60 and long.endswith("-12345678")


def test_job_spec_environment(tmp_path):
    settings = Settings(launcher="/venv/bin/pywps-gridengine-launcher", launcher_config="/etc/pywps.cfg",
                        pass_env=("TZ", "MISSING"), job_env={"OMP_NUM_THREADS": "1"})
    spec = build_job_spec(uuid="u-1", identifier="hello", workdir="/srv/wps/workdir/p1", dump_filename="/d.dump",
                          declared_resources={"h_rt": "60"}, settings=settings,
                          environ={"TZ": "UTC", "SECRET": "nope"})
    assert spec.environment == {"TZ": "UTC", "OMP_NUM_THREADS": "1", "PYWPS_CFG": "/etc/pywps.cfg",
                                "PATH": "/venv/bin:/usr/local/bin:/usr/bin:/bin"}
    assert spec.args == ["--config", "/etc/pywps.cfg", "/d.dump"]
    assert spec.native_specification == "-l h_rt=60"
    assert spec.working_directory == "/srv/wps/workdir/p1"


def test_job_spec_needs_a_config_for_the_exec_host():
    with pytest.raises(ConfigError, match="PYWPS_CFG"):
        build_job_spec(uuid="u", identifier="hello", workdir="/w", dump_filename="/d", declared_resources=None,
                       settings=Settings(launcher="/bin/l"), environ={})


def test_launcher_reports_unreadable_dump(make_env, tmp_path, capsys):
    env = make_env()
    assert launcher.main(["--config", str(env.cfg), str(tmp_path / "missing.dump")]) == 2
    assert "could not load job dump" in capsys.readouterr().err


def test_lost_submission_acknowledgement_orphans_nothing(cluster, monkeypatch):
    """Grid Engine took the job but recording its id failed: the client still gets
    Accepted (not a 500), and the launcher records its own JOB_ID."""
    env, client, submitter = cluster

    def broken(*args, **kwargs):
        raise RuntimeError("database gone for a moment")

    monkeypatch.setattr(JobStore, "set_submitted", broken)  # only the web host's submission uses it
    doc = submit(client, "sleep", "delay=0")
    assert status_of(doc) == "ProcessAccepted" and "Grid Engine job 4242" in status_text(doc)
    uuid = uuid_from_status_location(doc)
    assert JobStore.for_config(env.config).get(uuid).sge_job_id is None
    assert run_on_exec_host(env, submitter.specs[0], monkeypatch) == 0
    record = JobStore.for_config(env.config).get(uuid)
    assert (record.sge_job_id, record.state) == ("4242", "succeeded")


class DatabaseOutage:
    """Makes JobStore.record fail like an unreachable PostgreSQL, for the first ``failures`` calls
    of each kind asked for (progress: every non-final update; final: the final state)."""

    def __init__(self, monkeypatch, final_failures: int) -> None:
        from sqlalchemy.exc import OperationalError

        real = JobStore.record
        self.calls: list[str] = []

        def record(store, uuid, state, *args, **kwargs):
            self.calls.append(str(state))
            final = str(state) in ("succeeded", "failed")
            if not final or self.calls.count(str(state)) <= final_failures:
                raise OperationalError("UPDATE", {}, Exception("server closed the connection unexpectedly"))
            return real(store, uuid, state, *args, **kwargs)

        monkeypatch.setattr(JobStore, "record", record)
        monkeypatch.setattr("pywps_gridengine.compat.time.sleep", lambda seconds: None)


def test_job_finishing_during_a_database_outage_records_its_result_when_it_returns(cluster, monkeypatch):
    env, client, submitter = cluster
    uuid = uuid_from_status_location(submit(client, "sleep", "delay=0"))
    outage = DatabaseOutage(monkeypatch, final_failures=3)
    assert run_on_exec_host(env, submitter.specs[0], monkeypatch) == 0
    assert outage.calls.count("started") >= 2  # start and progress updates were dropped, not fatal
    assert outage.calls.count("succeeded") == 4  # retried until the database answered
    assert status_of(env.status_doc(uuid)) == "ProcessSucceeded"
    assert JobStore.for_config(env.config).get(uuid).state == "succeeded"


def test_database_gone_for_good_ends_in_a_clear_failure(cluster, monkeypatch):
    env, client, submitter = cluster
    env.cfg.write_text(env.cfg.read_text().replace("[gridengine]\n", "[gridengine]\ndb_retry_timeout = 0.2\n"))
    uuid = uuid_from_status_location(submit(client, "sleep", "delay=0"))
    DatabaseOutage(monkeypatch, final_failures=10**6)
    assert run_on_exec_host(env, submitter.specs[0], monkeypatch) == 4
    doc = env.status_doc(uuid)
    assert status_of(doc) == "ProcessFailed"
    assert "could not record its result" in status_text(doc) and "database was unreachable" in status_text(doc)


def test_result_whose_acknowledgement_was_lost_is_restored_by_the_repair_pass(cluster, monkeypatch):
    """The database commits Succeeded, then goes away before the launcher hears so: the launcher
    retries, gives up and writes ProcessFailed as its last resort, over a row that says Succeeded.
    The reconciler's repair pass writes back the succeeded document kept with the row."""
    from sqlalchemy.exc import OperationalError

    from pywps_gridengine.reconciler import DocumentFiles, Reconciler, failed_document_writer

    env, client, submitter = cluster
    env.cfg.write_text(env.cfg.read_text().replace("[gridengine]\n", "[gridengine]\ndb_retry_timeout = 0.2\n"))
    uuid = uuid_from_status_location(submit(client, "sleep", "delay=0"))
    real, calls = JobStore.record, []

    def record(store, uuid_, state, *args, **kwargs):
        if str(state) in ("succeeded", "failed"):
            calls.append(state)
            if len(calls) == 1:
                real(store, uuid_, state, *args, **kwargs)  # committed, and then the database is away
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
        return real(store, uuid_, state, *args, **kwargs)

    monkeypatch.setattr(JobStore, "record", record)
    monkeypatch.setattr("pywps_gridengine.compat.time.sleep", lambda seconds: None)
    assert run_on_exec_host(env, submitter.specs[0], monkeypatch) == 4
    monkeypatch.setattr(JobStore, "record", real)
    store = JobStore.for_config(env.config)
    assert store.get(uuid).state == "succeeded"
    assert status_of(env.status_doc(uuid)) == "ProcessFailed"  # the document disagrees with the row

    class NoActiveJobs:
        def job_info(self, sge_job_id):
            raise AssertionError("no job is active")

        def terminate(self, sge_job_id):
            raise AssertionError("no job is active")

    reconciler = Reconciler(store, NoActiveJobs(), write_failed=failed_document_writer(env.config),
                            documents=DocumentFiles(env.config.outputpath))
    assert reconciler.run_once().repaired == 1
    doc = env.status_doc(uuid)
    assert status_of(doc) == "ProcessSucceeded"
    assert literal_output(doc, "sleep_output")
    assert reconciler.run_once().repaired == 0


def test_job_past_its_memory_limit_says_so(cluster, tmp_path):
    """Grid Engine enforces h_vmem as the job's address space limit: the launcher, run as
    sge_execd would (its own process, the limit set), reports the limit, not a generic error."""
    import resource
    import subprocess
    import sys

    env, client, submitter = cluster
    uuid = uuid_from_status_location(submit(client, "allocate", "megabytes=3072"))
    [spec] = submitter.specs
    limit = 2 * 2**30

    def as_execd() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    job_env = {**os.environ, **{k: v for k, v in spec.environment.items() if k != "PATH"},
               "JOB_ID": "4242", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "pywps_gridengine.launcher", *spec.args], env=job_env,
                          cwd=tmp_path, preexec_fn=as_execd, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    doc = env.status_doc(uuid)
    assert status_of(doc) == "ProcessFailed"
    assert "ran out of memory: it reached its memory limit h_vmem=2G (peak virtual memory " in status_text(doc)
    assert re.search(r"\(peak virtual memory \d+M\)\.", status_text(doc)), status_text(doc)
    assert JobStore.for_config(env.config).get(uuid).state == "failed"


def test_a_refused_heartbeat_stops_the_launcher(cluster):
    """After the reconciler failed the job, the launcher stops instead of running on unseen."""
    import threading

    from pywps_gridengine.launcher import Heartbeat

    env, client, submitter = cluster
    uuid = uuid_from_status_location(submit(client, "sleep", "delay=0"))
    store = JobStore.for_config(env.config)
    fenced = threading.Event()
    with Heartbeat(store, uuid, 0.05, on_fenced=fenced.set):
        assert not fenced.wait(0.3)  # accepted, beating
        assert store.transition(uuid, "failed", "lost with its host")
        assert fenced.wait(2)


def test_job_ids_are_random_not_time_based(cluster):
    """A job id is a capability (its status document and outputs are public URLs): it must be a
    random version 4 uuid, not PyWPS's uuid1 that anyone can derive from the time and the host."""
    import uuid as uuidlib

    _, client, _ = cluster
    ids = [uuidlib.UUID(uuid_from_status_location(submit(client, "sleep", "delay=0"))) for _ in range(3)]
    assert {u.version for u in ids} == {4}
    assert len(set(ids)) == 3
