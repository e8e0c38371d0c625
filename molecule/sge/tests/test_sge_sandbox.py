"""Grid Engine's daemons in their systemd sandboxes: each unit's exposure stays
low, the sandbox is really applied to the daemon and inherited by every job,
and jobs still do their work inside it: they write their output, hit their
h_vmem and h_rt limits and are deleted with qdel."""

import re
import shlex
import time

import pytest
from pwgtest import SERVICE_USER, accounting, as_user, remote

QMASTER = "sge-qmaster"
SUBMIT = "sge-submit"
EXEC_HOSTS = ["sge-exec1", "sge-exec2"]
testinfra_hosts = [SUBMIT]

# systemd-analyze security's overall exposure of each unit when the sandbox
# was written, with a little room (10 is the worst; all three were 9.6
# before): fail if one creeps back up. The execd's is the highest because
# every job inherits its sandbox (see the unit template for what jobs keep).
MAX_EXPOSURE = {
    (QMASTER, "gridengine-master.service"): 2.4,
    **{(name, "gridengine-exec.service"): 4.9 for name in EXEC_HOSTS},
    **{(name, "gridengine-exec-watchdog.service"): 0.9 for name in EXEC_HOSTS},
}

# Capability numbers (capability.h).
CAP = {"chown": 0, "dac_override": 1, "dac_read_search": 2, "fowner": 3, "kill": 5, "setgid": 6, "setuid": 7,
       "sys_nice": 23, "sys_resource": 24}
EXECD_CAPS = sum(1 << number for number in CAP.values())
QMASTER_CAPS = (1 << CAP["setuid"]) | (1 << CAP["setgid"])


def exposure(target, unit: str) -> float:
    out = target.check_output(f"systemd-analyze security --no-pager {unit}")
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert found, out
    return float(found.group(1))


def process_status(target, unit: str) -> dict[str, str]:
    pid = int(target.check_output(f"systemctl show -P MainPID {unit}"))
    assert pid > 0, f"{unit} is not running"
    status = target.file(f"/proc/{pid}/status").content_string
    return {k: v.strip() for k, v in (line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)}


def submit(host, options: str, command: str) -> int:
    """Submit a job as the service user without waiting; its job id."""
    result = as_user(host, f"qsub -terse {options} -b y {command}")
    assert result.rc == 0, result.stderr
    return int(result.stdout.split()[0])


def run(host, options: str, command: str) -> tuple[int, dict[str, str]]:
    """Submit a job, wait for it (qsub -sync y); its id and accounting record."""
    result = as_user(host, f"qsub -terse -sync y {options} -b y {command}")
    job_id = int(result.stdout.split()[0])
    return job_id, accounting(remote(QMASTER), job_id)


@pytest.mark.parametrize(("name", "unit"), sorted(MAX_EXPOSURE))
def test_sandbox_exposure_is_low(name, unit):
    assert exposure(remote(name), unit) <= MAX_EXPOSURE[(name, unit)]


def test_qmaster_keeps_only_setuid_and_setgid():
    fields = process_status(remote(QMASTER), "gridengine-master.service")
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"
    assert int(fields["CapBnd"], 16) == QMASTER_CAPS
    assert fields["Uid"].split()[:2] == ["0", "103"]  # root, running as sgeadmin


@pytest.mark.parametrize("name", EXEC_HOSTS)
def test_execd_keeps_only_what_it_and_the_shepherd_need(name):
    fields = process_status(remote(name), "gridengine-exec.service")
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"
    bounding = int(fields["CapBnd"], 16)
    assert bounding & ~EXECD_CAPS == 0, hex(bounding)
    # Those the test bed's containers grant: still there.
    needed = ("setuid", "setgid", "kill", "chown", "fowner", "dac_override")
    assert all(bounding & (1 << CAP[cap]) for cap in needed), hex(bounding)


def test_watchdog_runs_in_its_sandbox():
    target = remote(EXEC_HOSTS[0])
    target.check_output("systemctl start gridengine-exec-watchdog.service")
    assert target.check_output("systemctl show -P Result gridengine-exec-watchdog.service") == "success"


def test_a_job_inherits_the_sandbox_and_writes_its_output(host):
    """The job runs as its user without privileges, under NoNewPrivileges, and writes where it must."""
    script = ("grep -E '^(Uid|NoNewPrivs|CapEff):' /proc/self/status; "
              "echo tmp > $TMPDIR/f && cat $TMPDIR/f; echo vartmp > /var/tmp/sandbox.$JOB_ID && cat "
              "/var/tmp/sandbox.$JOB_ID && rm /var/tmp/sandbox.$JOB_ID; "
              "touch /etc/sandbox-probe 2>&1 || echo etc-refused; "
              "sudo -n true 2>/dev/null || echo no-sudo")
    out = f"/home/{SERVICE_USER}/sandbox.$JOB_ID.out"
    job_id, record = run(host, f"-j y -o {shlex.quote(out)}", f"/bin/sh -c {shlex.quote(shlex.quote(script))}")
    assert record["exit_status"].split()[0] == "0", record
    exec_host = remote(record["hostname"])
    written = exec_host.file(f"/home/{SERVICE_USER}/sandbox.{job_id}.out")
    assert written.exists and written.user == SERVICE_USER
    text = written.content_string
    exec_host.run(f"rm -f {written.path}")
    uid = str(remote(record["hostname"]).user(SERVICE_USER).uid)
    assert re.search(rf"^Uid:\s+{uid}\s+{uid}\s+{uid}\s+{uid}$", text, re.M), text
    assert re.search(r"^NoNewPrivs:\s+1$", text, re.M), text
    assert re.search(r"^CapEff:\s+0+$", text, re.M), text
    assert "tmp\nvartmp\n" in text and "etc-refused" in text and "no-sudo" in text, text


def test_a_job_over_h_vmem_gets_no_more_memory(host):
    """h_vmem is the job's address space limit: the allocation past it fails inside the sandbox too."""
    script = "import sys; b = bytearray(512 * 2**20); sys.exit(0)"
    job_id, record = run(host, "-o /dev/null -e /dev/null -l h_vmem=256M", f"python3 -c {shlex.quote(repr(script))}")
    assert record["exit_status"].split()[0] == "1", record  # MemoryError
    assert record["failed"].split()[0] == "0", record


def test_a_job_over_h_rt_is_killed(host):
    start = time.monotonic()
    job_id, record = run(host, "-o /dev/null -e /dev/null -l h_rt=5", "sleep 120")
    assert time.monotonic() - start < 60
    assert record["exit_status"].split()[0] == "137", record  # SIGKILL at h_rt
    assert float(record["ru_wallclock"].rstrip("s")) < 30, record


def test_a_running_job_is_deleted_with_qdel(host):
    job_id = submit(host, "-o /dev/null -e /dev/null", "sleep 300")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if re.search(rf"^\s*{job_id}\s.*\sr\s", as_user(host, "qstat").stdout, re.M):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"job {job_id} never ran: {as_user(host, 'qstat').stdout}")
    assert as_user(host, f"qdel {job_id}").rc == 0
    record = accounting(remote(QMASTER), job_id, timeout=60)
    assert record["exit_status"].split()[0] == "137", record  # the shepherd killed it
    assert float(record["ru_wallclock"].rstrip("s")) < 60, record
