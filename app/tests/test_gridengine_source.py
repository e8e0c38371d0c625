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


def stand_in(script, lines: list[str]) -> str:
    """Write an executable shell script of ``lines`` at ``script`` (a Grid Engine command's stand-in)."""
    script.write_text("\n".join(lines) + "\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


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
    return stand_in(script, lines)


# -- qstat -j of a job in error state (written for these tests in SGE 8.1's layout) ------------------

QSTAT_EQW = """\
==============================================================
job_number:                 4
exec_file:                  job_scripts/4
submission_time:            07/01/2026 11:59:58.123
owner:                      wps
uid:                        1000
group:                      wps
sge_o_workdir:              /srv/wps/workdir/pywps_process_abc
cwd:                        /nonexistent
hard resource_list:         h_rt=30,h_vmem=512M
job_name:                   wps-sleep-1a2b3c4d
jobshare:                   0
error reason    1:          07/01/2026 12:00:00 [1000:1234]: error: can't chdir to /nonexistent: No such file or \
directory
scheduling info:            (Collecting of scheduler job information is turned off)
"""


def qstat_script(tmp_path, jobs: dict[str, str], sleep: float = 0) -> str:
    """A stand-in qstat: ``qstat -j N`` prints the text given for N, else says the job does not exist."""
    script = tmp_path / "qstat"
    lines = ["#!/bin/sh"]
    if sleep:
        lines.append(f"sleep {sleep}")
    for job_id, text in jobs.items():
        lines.append(f'if [ "$1" = "-j" ] && [ "$2" = "{job_id}" ]; then cat <<"EOF"\n{text}EOF\nexit 0; fi')
    lines.append('echo "Following jobs do not exist or permissions are not sufficient: " >&2; echo "$2" >&2; exit 1')
    return stand_in(script, lines)


@pytest.fixture
def source(monkeypatch, tmp_path):
    states = {"1": "queued_active", "2": "running", "3": "user_on_hold", "4": "system_on_hold",
              "5": "user_suspended", "6": "undetermined"}
    monkeypatch.setitem(sys.modules, "drmaa", fake_drmaa(states))
    return GridEngineStateSource(qacct=qacct_script(tmp_path, {"7": QACCT_DELETED}),
                                 qstat=qstat_script(tmp_path, {"4": QSTAT_EQW}))


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


# -- Grid Engine's reason for an error state (qstat -j) ---------------------------------------------


@pytest.mark.parametrize(("text", "reason"), [
    (QSTAT_EQW, "can't chdir to /nonexistent: No such file or directory"),
    # no error reason line at all (a job held by the system for another reason)
    (QSTAT_EQW.replace("error reason", "reason_other"), None),
    ("", None),
    # odd spacing, no "error:" word, the credentials some releases append
    ('error reason          1:      08/19/2024 14:10:31 [1730373583:9092]: can\'t stat() "/grid_test" as '
     'stdout_path: Permission denied KRB5CCNAME=none uid=1000 gid=1000 101 600\n',
     'can\'t stat() "/grid_test" as stdout_path: Permission denied'),
    ("error reason 1: 07/01/2026 12:00:00 [1000:1234]:   error:   can't open /dev/null as dummy input file.  \n",
     "can't open /dev/null as dummy input file"),
    # several tasks: the same reason once, different ones joined
    ("error reason    2:   04/26/2026 11:19:28 [1002:22648]: error: can't chdir to /home/x\n"
     "error reason    4:   04/26/2026 11:19:28 [1002:22651]: error: can't chdir to /home/x\n"
     "error reason    6:   04/26/2026 11:19:43 [1002:22674]: error: can't open output file \"/o\": Permission denied\n",
     "can't chdir to /home/x; can't open output file \"/o\": Permission denied"),
    # a message without time and process, and control characters in it
    ("error reason    1:   error: can't chdir to /a\x1b[31mb\tc\n", "can't chdir to /a [31mb c"),
])
def test_error_state_reason_from_qstat(text, reason):
    from pywps_gridengine.reconciler import error_state_reason

    assert error_state_reason(text) == reason


def test_error_state_reason_is_bounded():
    from pywps_gridengine.reconciler import ERROR_REASON_LENGTH, error_state_reason

    text = "".join(f"error reason {n}: 07/01/2026 12:00:00 [1:2]: error: can't chdir to /dir{n:04d}/{'x' * 40}\n"
                   for n in range(50))
    reason = error_state_reason(text)
    assert len(reason) == ERROR_REASON_LENGTH and reason.endswith("...")


def test_error_state_job_carries_grid_engines_reason(source):
    info = source.job_info("4")
    assert (info.state, info.reason) == (SgeState.ERROR, "can't chdir to /nonexistent: No such file or directory")


def test_error_state_reason_as_the_client_reads_it(source):
    import datetime as dt

    from pywps_gridengine.jobs import JobRecord
    from pywps_gridengine.reconciler import decide

    now = dt.datetime(2026, 7, 1, 12, 0, 5)
    job = JobRecord(uuid="u", identifier="sleep", state="accepted", sge_job_id="4", job_name=None,
                    native_specification=None, workdir=None, exec_host=None, message=None, created_at=now,
                    submitted_at=now, started_at=None, heartbeat_at=None, gone_since=None, finished_at=None,
                    updated_at=now)
    decision = decide(job, source.job_info("4"), now, heartbeat_timeout=30, gone_grace=15, submit_timeout=120)
    assert decision.fail and decision.terminate
    assert decision.reason == ("Grid Engine could not start the job (Grid Engine job 4, error state): "
                               "can't chdir to /nonexistent: No such file or directory.")


@pytest.mark.parametrize("drmaa_state", ["system_on_hold", "failed"])
def test_error_state_without_a_reason_says_where_to_look(monkeypatch, tmp_path, drmaa_state):
    """qstat answers without an error reason (or not at all): the job is still failed, with a pointer."""
    monkeypatch.setitem(sys.modules, "drmaa", fake_drmaa({"9": drmaa_state}))
    source = GridEngineStateSource(qacct=qacct_script(tmp_path, {}), qstat=qstat_script(tmp_path, {}))
    info = source.job_info("9")
    assert info.state == SgeState.ERROR
    assert info.reason == ("it is held by the system; see qstat -j 9" if drmaa_state == "system_on_hold"
                           else "DRMAA reports it failed")


def test_a_hung_qstat_does_not_stall_the_pass(monkeypatch, tmp_path):
    import time

    monkeypatch.setitem(sys.modules, "drmaa", fake_drmaa({"4": "system_on_hold"}))
    source = GridEngineStateSource(qacct=qacct_script(tmp_path, {}),
                                   qstat=qstat_script(tmp_path, {"4": QSTAT_EQW}, sleep=30))
    source.QSTAT_TIMEOUT = 0.5
    began = time.monotonic()
    info = source.job_info("4")
    assert time.monotonic() - began < 5
    assert (info.state, info.reason) == (SgeState.ERROR, "it is held by the system; see qstat -j 4")


def test_a_missing_qstat_leaves_the_reason_out(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "drmaa", fake_drmaa({"4": "failed"}))
    source = GridEngineStateSource(qacct=qacct_script(tmp_path, {}), qstat=str(tmp_path / "no-qstat"))
    assert source.job_info("4").reason == "DRMAA reports it failed"
