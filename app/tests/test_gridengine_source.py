"""GridEngineStateSource against a stand-in DRMAA module and a stand-in qacct command."""

from __future__ import annotations

import stat
import sys
import types

import pytest

from pywps_gridengine.reconciler import GridEngineStateSource, SgeState

QACCT_DELETED = """\
==============================================================
qname        wps.q
hostname     exec1
jobnumber    7
failed       100 : assumedly after job
exit_status  137
ru_wallclock 4s
category     -q wps.q -l h_rt=600
deleted_by   wps@web1
"""


class InvalidJobException(Exception):
    pass


def fake_drmaa(states: dict[str, str]) -> types.ModuleType:
    module = types.ModuleType("drmaa")
    module.InvalidJobException = InvalidJobException
    module.JobState = types.SimpleNamespace(
        UNDETERMINED="undetermined", QUEUED_ACTIVE="queued_active", SYSTEM_ON_HOLD="system_on_hold",
        USER_ON_HOLD="user_on_hold", USER_SYSTEM_ON_HOLD="user_system_on_hold", RUNNING="running",
        SYSTEM_SUSPENDED="system_suspended", USER_SUSPENDED="user_suspended",
        USER_SYSTEM_SUSPENDED="user_system_suspended", DONE="done", FAILED="failed")
    module.JobControlAction = types.SimpleNamespace(TERMINATE="terminate")

    class Session:
        def initialize(self) -> None:
            pass

        def exit(self) -> None:
            pass

        def jobStatus(self, job_id: str) -> str:
            if job_id not in states:
                raise InvalidJobException(job_id)
            return states[job_id]

    module.Session = Session
    return module


def qacct_script(tmp_path, records: dict[str, str], broken: bool = False, no_file: bool = False):
    script = tmp_path / "qacct"
    lines = ["#!/bin/sh"]
    if broken:
        lines.append('echo "error: cannot open accounting file" >&2; exit 1')
    if no_file:  # what SGE 8.1.9's qacct says on a host without the qmaster's cell directory
        lines.append('echo "/var/lib/gridengine/default/common/accounting: No such file or directory" >&2; exit 1')
    for job_id, text in records.items():
        lines.append(f'if [ "$2" = "{job_id}" ]; then cat <<"EOF"\n{text}EOF\nexit 0; fi')
    lines.append('echo "error: job id $2 not found" >&2; exit 1')
    script.write_text("\n".join(lines) + "\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


@pytest.fixture
def source(monkeypatch, tmp_path):
    states = {"1": "queued_active", "2": "running", "3": "user_on_hold", "4": "system_on_hold",
              "5": "user_suspended", "6": "undetermined"}
    monkeypatch.setitem(sys.modules, "drmaa", fake_drmaa(states))
    return GridEngineStateSource(qacct=qacct_script(tmp_path, {"7": QACCT_DELETED}))


@pytest.mark.parametrize(("job_id", "state"), [
    ("1", SgeState.QUEUED), ("2", SgeState.RUNNING), ("3", SgeState.HELD), ("4", SgeState.ERROR),
    ("5", SgeState.SUSPENDED), ("6", SgeState.UNKNOWN), ("99", SgeState.UNKNOWN),
])
def test_states(source, job_id, state):
    assert source.job_info(job_id).state == state


def test_finished_job_comes_from_accounting(source):
    info = source.job_info("7")
    assert info.state == SgeState.FINISHED
    assert (info.deleted_by, info.exit_status, info.h_rt, info.wallclock) == ("wps@web1", 137, 600.0, 4.0)


def test_unreadable_accounting_is_an_error_not_a_lost_job(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "drmaa", fake_drmaa({}))
    source = GridEngineStateSource(qacct=qacct_script(tmp_path, {}, broken=True))
    with pytest.raises(RuntimeError, match="accounting file"):
        source.job_info("8")


def test_host_without_accounting_file_sees_a_gone_job_as_unknown(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "drmaa", fake_drmaa({"2": "running"}))
    source = GridEngineStateSource(qacct=qacct_script(tmp_path, {}, no_file=True))
    assert source.job_info("8").state == SgeState.UNKNOWN  # gone from the qmaster, no accounting here
    assert source.job_info("2").state == SgeState.RUNNING


def test_shared_accounting_file_is_read_with_qacct_f(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "drmaa", fake_drmaa({}))
    script = qacct_script(tmp_path, {"7": QACCT_DELETED})
    calls = tmp_path / "calls"
    wrapper = tmp_path / "qacct-recording"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {script} "$@"\n')
    wrapper.chmod(0o755)
    source = GridEngineStateSource(qacct=str(wrapper), accounting_file="/srv/wps/sge/accounting")
    assert source.job_info("7").deleted_by == "wps@web1"
    assert calls.read_text().split() == ["-j", "7", "-f", "/srv/wps/sge/accounting"]


def test_missing_shared_accounting_file_is_an_error_not_a_lost_job(monkeypatch, tmp_path):
    """A configured accounting file that is not there is a fault to report, not 'no record'."""
    monkeypatch.setitem(sys.modules, "drmaa", fake_drmaa({}))
    source = GridEngineStateSource(qacct=qacct_script(tmp_path, {}, no_file=True),
                                   accounting_file="/srv/wps/sge/accounting")
    with pytest.raises(RuntimeError, match="No such file"):
        source.job_info("8")


REPORTING = """\
1795789039:new_job:1795789039:18:-1:NONE:probe4:wps:wps::dept:sge:1024
1795789039:job_log:1795789039:pending:18:-1:NONE::wps:web1:0:1024:1795789039:probe4:wps:wps::dept:sge:new job
1795789045:job_log:1795789045:deleted:18:0:NONE:r:wps:web1:0:1024:1795789039:probe4:wps:wps::dept:sge:job deleted
1795789046:job_log:1795789046:deleted:18:0:NONE:r:execution daemon:exec1:0:1024:1795789039:p:w:w::x:sge:job removed
1795789046:job_log:1795789046:deleted:19:0:NONE:T:scheduler:qmaster:0:1024:1795789039:p:w:w::x:sge:deleted by scheduler
"""


def test_who_deleted_a_job_comes_from_the_reporting_job_log(tmp_path):
    from pywps_gridengine.reconciler import deleted_by

    reporting = tmp_path / "reporting"
    reporting.write_text(REPORTING)
    assert deleted_by(str(reporting), "18") == "wps@web1"
    assert deleted_by(str(reporting), "19") is None  # only Grid Engine's own daemons: not a qdel
    assert deleted_by(str(reporting), "1") is None
    assert deleted_by(str(tmp_path / "missing"), "18") is None


def test_finished_job_deleted_with_qdel_names_the_deleter(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "drmaa", fake_drmaa({}))
    record = QACCT_DELETED.replace("deleted_by   wps@web1\n", "").replace("jobnumber    7", "jobnumber    18")
    reporting = tmp_path / "reporting"
    reporting.write_text(REPORTING)
    source = GridEngineStateSource(qacct=qacct_script(tmp_path, {"18": record}), reporting_file=str(reporting))
    info = source.job_info("18")
    assert (info.state, info.deleted_by, info.exit_status) == (SgeState.FINISHED, "wps@web1", 137)
