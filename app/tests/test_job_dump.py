"""A job dump on the shared tree names its process; only the app's own processes are ever loaded from it.

PyWPS's ``Process.from_json`` imports whatever ``module:Class`` a dump names,
so anyone who can write the shared tree could make an exec host's launcher or
the reconciler import a module of their choosing. The dump's identifier now
picks one of the app's processes and its class must be that process's class;
anything else is refused before anything is imported: the launcher exits 2
(the job is failed as a job whose launcher could not load it), and the
reconciler's resubmission fails the job saying why.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from test_resubmission import FIRST, Cluster, submitted_sleep
from test_scheduler_launcher import RecordingSubmitter
from wpstest import literal_output, status_of, status_text

from pywps_gridengine.compat import DumpRefused, dump_process
from pywps_gridengine.processes import Sleep
from pywps_gridengine.reconciler import JobInfo, SgeState
from pywps_gridengine.scheduler import GridEngineScheduler

# A module that leaves a mark when it is imported: what an attacker would plant.
PLANTED = "planted_by_someone"
PLANTED_SOURCE = """
import pathlib
pathlib.Path(__file__).with_name("imported").write_text("imported")


class Planted:
    identifier = "sleep"
"""


@pytest.fixture
def cluster(make_env, monkeypatch, tmp_path) -> Cluster:
    """The app with a recording submitter and a reconciler (test_resubmission's), one job submitted by each test."""
    monkeypatch.chdir(tmp_path)  # the launcher changes into (then removes) job work dirs
    env = make_env(mode="scheduler", extra="[gridengine]\nqueue = wps.q\n\n[gridengine:sleep]\nh_rt = 00:02:00\n")
    web = RecordingSubmitter()
    monkeypatch.setattr(GridEngineScheduler, "submitter", web)
    return Cluster(env, web)


@pytest.fixture
def planted(tmp_path, monkeypatch) -> Path:
    """The planted module on sys.path; returns the file its import would create."""
    directory = tmp_path / "planted"
    directory.mkdir()
    (directory / f"{PLANTED}.py").write_text(PLANTED_SOURCE)
    monkeypatch.syspath_prepend(str(directory))
    monkeypatch.delitem(sys.modules, PLANTED, raising=False)
    return directory / "imported"


def tamper(dump: str, **process: object) -> None:
    """Rewrite the dump's process description as someone with write access to the shared tree could."""
    path = Path(dump)
    value = json.loads(path.read_text())
    value["process"].update(process)
    path.write_text(json.dumps(value))


def launch_refused(cluster, monkeypatch, capsys, uuid: str) -> str:
    """Launch the job's only spec, which must be refused (exit 2); then Grid Engine reports that exit.

    Returns the launcher's standard error.
    """
    [spec] = cluster.web.specs
    assert cluster.launch(spec, FIRST, monkeypatch) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    cluster.source.jobs[FIRST] = JobInfo(SgeState.FINISHED, exit_status=2, failed=0, hostname="exec1")
    assert cluster.reconciler.run_once().failed == 1
    record = cluster.store.get(uuid)
    assert record.state == "failed"
    assert f"The job launcher of Grid Engine job {FIRST} could not load the job on exec1" in record.message
    doc = cluster.env.status_doc(uuid)
    assert status_of(doc) == "ProcessFailed" and "could not load the job" in status_text(doc)
    return err


def test_a_valid_dump_still_runs(cluster, monkeypatch):
    uuid = submitted_sleep(cluster)
    [spec] = cluster.web.specs
    assert cluster.launch(spec, FIRST, monkeypatch) == 0
    doc = cluster.env.status_doc(uuid)
    assert status_of(doc) == "ProcessSucceeded", status_text(doc)
    assert literal_output(doc, "sleep_output") == "done sleeping"


def test_a_dump_naming_another_module_is_refused_and_nothing_is_imported(
        cluster, monkeypatch, capsys, planted):
    uuid = submitted_sleep(cluster)
    tamper(cluster.web.specs[0].args[-1], **{"class": f"{PLANTED}:Planted"})
    err = launch_refused(cluster, monkeypatch, capsys, uuid)
    assert "refused: the job dump names class 'planted_by_someone:Planted' for process 'sleep'" in err
    assert "not 'pywps_gridengine.processes.sleep:Sleep'" in err
    assert not planted.exists() and PLANTED not in sys.modules


def test_a_dump_naming_another_process_class_of_the_app_is_refused(cluster, monkeypatch, capsys):
    """Even a class the app has: it must be the class of the process the dump's identifier names."""
    uuid = submitted_sleep(cluster)
    tamper(cluster.web.specs[0].args[-1], **{"class": "pywps_gridengine.processes.fail:Fail"})
    err = launch_refused(cluster, monkeypatch, capsys, uuid)
    assert "names class 'pywps_gridengine.processes.fail:Fail' for process 'sleep'" in err


def test_a_dump_naming_an_unknown_process_is_refused(cluster, monkeypatch, capsys, planted):
    uuid = submitted_sleep(cluster)
    tamper(cluster.web.specs[0].args[-1], identifier="planted", **{"class": f"{PLANTED}:Planted"})
    err = launch_refused(cluster, monkeypatch, capsys, uuid)
    assert "refused: the job dump names process 'planted', which this service does not offer" in err
    assert not planted.exists()


def test_resubmitting_a_tampered_dump_fails_the_job_and_submits_nothing(cluster, planted):
    """The reconciler rebuilds a lost job's spec from its dump: the same check, nothing is imported."""
    uuid = submitted_sleep(cluster)
    tamper(cluster.web.specs[0].args[-1], **{"class": f"{PLANTED}:Planted"})
    cluster.lose(FIRST)
    assert cluster.passes_until_verdict().failed == 1
    record = cluster.store.get(uuid)
    assert record.state == "failed"
    assert "It was not run again: its job could not be rebuilt from its dump (DumpRefused: the job dump " \
           "names class 'planted_by_someone:Planted' for process 'sleep'" in record.message
    assert status_of(cluster.env.status_doc(uuid)) == "ProcessFailed"
    assert cluster.resubmitter.specs == []
    assert not planted.exists() and PLANTED not in sys.modules


def test_resubmission_refuses_a_dump_of_another_process_than_the_jobs(cluster):
    """A valid dump of another process (e.g. copied from another job) is not this job's: refused."""
    uuid = submitted_sleep(cluster)
    tamper(cluster.web.specs[0].args[-1], identifier="fail", **{"class": "pywps_gridengine.processes.fail:Fail"})
    cluster.lose(FIRST)
    assert cluster.passes_until_verdict().failed == 1
    assert "the job dump names process 'fail', not the job's process 'sleep'" in cluster.store.get(uuid).message
    assert cluster.resubmitter.specs == []


VALID = {"identifier": "sleep", "class": "pywps_gridengine.processes.sleep:Sleep",
         "uuid": "0b6f1f7e-8d52-4c1e-9a51-3f0c2a7d9e10", "workdir": None}


@pytest.mark.parametrize(("change", "reason"), [
    ({"identifier": None}, "names no process identifier"),
    ({"identifier": ["sleep"]}, "names no process identifier"),
    ({"class": None}, "names class None for process 'sleep'"),
    ({"class": "pywps_gridengine.processes.sleep:Sleep.__init__"}, "names class"),
    ({"class": "pywps.app.Process:Process"}, "names class 'pywps.app.Process:Process'"),
    ({"uuid": "../../etc/passwd"}, "job id '../../etc/passwd' is not a UUID"),
    ({"workdir": 42}, "work directory is not a path"),
])
def test_dump_process_refuses_what_the_app_did_not_write(change, reason):
    with pytest.raises(DumpRefused, match=reason.replace("(", r"\(").replace(".", r"\.")):
        dump_process({**VALID, **change})


def test_dump_process_refuses_a_dump_without_a_process_description():
    with pytest.raises(DumpRefused, match="holds no process description"):
        dump_process(["sleep"])


def test_dump_process_builds_the_apps_own_process():
    process = dump_process(VALID, identifier="sleep")
    assert type(process) is Sleep and str(process.uuid) == VALID["uuid"]
