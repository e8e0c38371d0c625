"""The Grid Engine tier at work: jobs submitted as the service user from the
submit host run on exec hosts, are accounted, and bad jobs are refused; no
other user submits, no exec host submits, no one gets an interactive session."""

import json
import shlex

import pytest
from pwgtest import SERVICE_USER, as_user, remote
from pwgtest import accounting as qacct

QMASTER = "sge-qmaster"
SUBMIT = "sge-submit"
# sge-exec3 joins in test_grow.py (playbooks/sge-scale-out.yml), which runs first.
EXEC_HOSTS = ["sge-exec1", "sge-exec2", "sge-exec3"]
DRMAA_ENV = "/etc/default/gridengine-drmaa"

testinfra_hosts = [SUBMIT]


def qsub_sync(host, options: str = "", command: str = "true") -> int:
    """Submit a job and wait for it; return its job id."""
    result = as_user(host, f"qsub -terse -sync y -o /dev/null -e /dev/null -b y {options} {command}")
    assert result.rc == 0, result.stderr
    return int(result.stdout.split()[0])


def accounting(job_id: int) -> dict:
    """The job's accounting record (qacct on the qmaster, which keeps the file)."""
    return qacct(remote(QMASTER), job_id)


def drmaa(host, script: str):
    """Run a Python DRMAA client as the service user with the submit role's environment."""
    return as_user(host, f"env $(cat {DRMAA_ENV} | grep -v '^#') python3 -c {shlex.quote(script)}")


def test_qsub_job_runs_on_an_exec_host_and_is_accounted(host):
    job_id = qsub_sync(host)
    record = accounting(job_id)
    assert record["hostname"] in EXEC_HOSTS
    assert record["hostname"] != QMASTER
    assert record["owner"] == SERVICE_USER
    assert record["exit_status"].split()[0] == "0"
    assert record["failed"].split()[0] == "0"


def test_drmaa_job_completes_with_exit_status_0(host):
    script = """
import drmaa
with drmaa.Session() as session:
    template = session.createJobTemplate()
    template.remoteCommand = "/bin/sh"
    template.args = ["-c", "hostname; exit 0"]
    template.outputPath = ":/dev/null"
    template.joinFiles = True
    job_id = session.runJob(template)
    info = session.wait(job_id, drmaa.Session.TIMEOUT_WAIT_FOREVER)
    print(job_id, info.hasExited, info.exitStatus)
"""
    result = drmaa(host, script)
    assert result.rc == 0, result.stderr
    job_id, exited, status = result.stdout.split()
    assert (exited, status) == ("True", "0")
    assert accounting(int(job_id))["hostname"] in EXEC_HOSTS


def test_drmaa_library_needs_the_preload(host):
    """Why LD_PRELOAD is part of the environment: without it Python cannot load the library."""
    result = as_user(
        host,
        f"env $(grep -v -e '^#' -e '^LD_PRELOAD' {DRMAA_ENV}) python3 -c 'import drmaa'",
    )
    assert result.rc != 0
    assert "static TLS block" in result.stderr


@pytest.mark.parametrize(
    "request_",
    ["-l h_vmem=1000G", "-pe smp 64"],
    ids=["more-memory-than-any-host", "more-slots-than-any-host"],
)
def test_impossible_job_is_rejected_at_submit(host, request_):
    result = as_user(host, f"qsub -b y {request_} true")
    assert result.rc != 0
    assert "no suitable queues" in result.stderr


def test_impossible_drmaa_job_is_rejected_at_submit(host):
    script = """
import drmaa
with drmaa.Session() as session:
    template = session.createJobTemplate()
    template.remoteCommand = "/bin/true"
    template.nativeSpecification = "-l h_vmem=1000G"
    try:
        session.runJob(template)
    except drmaa.errors.DeniedByDrmException as err:
        print("denied:", err)
"""
    result = drmaa(host, script)
    assert result.rc == 0, result.stderr
    assert "denied:" in result.stdout and "no suitable queues" in result.stdout


def test_root_cannot_run_jobs(host):
    result = host.run("qsub -b y true")
    assert result.rc != 0
    assert "lower than minimum user id 1000" in result.stderr


def test_qhost_lists_every_exec_host_with_a_slot_per_cpu(host):
    lines = as_user(host, "qhost -q").stdout.splitlines()
    slots = {}
    for index, line in enumerate(lines):
        fields = line.split()
        if fields and fields[0] in EXEC_HOSTS + [QMASTER]:
            queue = lines[index + 1].split()
            assert queue[0] == "all.q"
            slots[fields[0]] = int(queue[2].split("/")[2])
    expected = {name: int(remote(name).check_output("nproc")) for name in EXEC_HOSTS}
    assert slots == expected


def test_third_exec_host_receives_jobs(host):
    job_id = qsub_sync(host, "-l hostname=sge-exec3")
    assert accounting(job_id)["hostname"] == "sge-exec3"


@pytest.mark.parametrize("name", [QMASTER, SUBMIT])
def test_operators_have_the_client_tools_in_a_login_shell(name):
    target = remote(name)
    for command in ("qstat -u '*'", "qhost", "qstat -g c"):
        result = as_user(target, command)
        assert result.rc == 0, f"{command} on {name}: {result.stderr}"
    assert "all.q" in as_user(target, "qstat -g c").stdout
    if name == QMASTER:
        assert as_user(target, "qacct -o wps").rc == 0


def test_exec_hosts_are_no_submit_hosts():
    """sge_qmaster_exec_hosts_submit is off (the default): only the web host submits."""
    submit_hosts = remote(QMASTER).check_output("qconf -ss").split()
    assert submit_hosts == [SUBMIT]


@pytest.mark.parametrize("name", EXEC_HOSTS)
def test_exec_host_can_neither_submit_nor_query_the_qmaster(name):
    """Grid Engine lets only submit and admin hosts run qsub, qstat and qhost."""
    target = remote(name)
    submitted = as_user(target, "qsub -b y true")
    assert submitted.rc != 0
    assert f'host "{name}" is not a submit host' in submitted.stderr
    for command in ("qstat -u '*'", "qhost"):
        result = as_user(target, command)
        assert result.rc != 0, f"{command} on {name}: {result.stdout}"
        assert f'host "{name}" is neither submit nor admin host' in result.stderr


ACCESS_LIST = "wps_users"
# A local user like any other on the submit host: uid >= min_uid, not in the access list.
OTHER_USER, OTHER_UID = "intruder", 3001


@pytest.fixture(scope="module")
def other_user(host):
    host.check_output(f"getent passwd {OTHER_USER} || useradd --create-home --uid {OTHER_UID} "
                      f"--shell /bin/bash {OTHER_USER}")
    assert host.user(OTHER_USER).uid >= 1000
    return OTHER_USER


def test_the_access_list_holds_the_service_user_only():
    qmaster = remote(QMASTER)
    acl = dict(line.split(None, 1) for line in qmaster.check_output(f"qconf -su {ACCESS_LIST}").splitlines())
    assert acl["type"] == "ACL"
    assert acl["entries"].strip() == SERVICE_USER
    queue = dict(line.split(None, 1) for line in qmaster.check_output("qconf -sq all.q").splitlines()
                 if not line.startswith(" "))
    assert queue["user_lists"].strip() == ACCESS_LIST
    assert queue["qtype"].strip() == "BATCH"
    global_config = [line.split() for line in qmaster.check_output("qconf -sconf global").splitlines()]
    assert ["user_lists", ACCESS_LIST] in global_config


@pytest.mark.parametrize("verify", ["", "-w n", "-w w"], ids=["default", "no-verify", "warn-only"])
def test_another_local_user_is_refused_and_nothing_is_stored(host, other_user, verify):
    """Not in the access list: refused at submit whatever the verification level (the global user_lists)."""
    result = as_user(host, f"qsub {verify} -b y true", user=other_user)
    assert result.rc != 0
    assert f"job rejected: {other_user}@{SUBMIT} is not allowed to submit jobs" in result.stderr
    assert "has been submitted" not in result.stdout
    assert as_user(host, f"qstat -u {other_user}").stdout.strip() == ""


def test_another_local_user_is_refused_through_drmaa(host, other_user):
    script = """
import drmaa
with drmaa.Session() as session:
    template = session.createJobTemplate()
    template.remoteCommand = "/bin/true"
    try:
        session.runJob(template)
    except drmaa.errors.DeniedByDrmException as err:
        print("denied:", err)
"""
    result = as_user(host, f"env $(cat {DRMAA_ENV} | grep -v '^#') python3 -c {shlex.quote(script)}",
                     user=other_user)
    assert result.rc == 0, result.stderr
    assert "denied:" in result.stdout and "is not allowed to submit jobs" in result.stdout


@pytest.mark.parametrize("command", ["qrsh -q all.q true", "qrsh true", "qlogin -q all.q"])
def test_no_interactive_session_on_the_wps_queue(host, command):
    """qtype BATCH: even the service user gets no qrsh/qlogin session on an exec host."""
    result = as_user(host, f"{command} < /dev/null")
    assert result.rc != 0
    assert "no suitable queues" in result.stderr


def test_trivial_job_latency_with_default_scheduler(host):
    """qsub to job end for a trivial job stays near the scheduler's one-second cadence."""
    script = """
import json, time, drmaa
times = []
with drmaa.Session() as session:
    template = session.createJobTemplate()
    template.remoteCommand = "/bin/true"
    template.outputPath = ":/dev/null"
    template.joinFiles = True
    for _ in range(8):
        start = time.monotonic()
        info = session.wait(session.runJob(template), drmaa.Session.TIMEOUT_WAIT_FOREVER)
        times.append(round(time.monotonic() - start, 2))
        assert info.exitStatus == 0
print(json.dumps(sorted(times)))
"""
    result = drmaa(host, script)
    assert result.rc == 0, result.stderr
    times = json.loads(result.stdout)
    print(f"qsub -> job end, trivial job, seconds: {times}")
    assert times[len(times) // 2] < 3.0
    assert times[-1] < 6.0
