"""The web tier's systemd sandbox: each unit's exposure stays low, the sandbox is
really applied (read-only system, only the unit's own directories writable,
no privileges), the limits are set, and the units still do their work inside
it (the other tests of the scenario exercise gunicorn in it). Bad limits stop
the role before it changes anything."""

import re
import shlex
import uuid

import pytest
from pwgtest import SHARED, refusal, run_playbook

OUTPUTS, WORKDIR, LOGS = f"{SHARED}/outputs", f"{SHARED}/workdir", f"{SHARED}/log"
DATABASE_DIR = "/var/lib/pywps"  # the scenario's SQLite database
VENV = "/opt/pywps/venv"

# systemd-analyze security's overall exposure of each unit: 1.6 each when the
# sandbox was written (9.2 each before it; 10 is the worst), with a little
# room. Fail if one creeps back up.
MAX_EXPOSURE = {
    "pywps.service": 1.8,
    "pywps-reconciler.service": 1.8,
    "pywps-cleanup.service": 1.8,
    "pywps-exporter.service": 1.8,
}

# The reconciler's own work, run with its unit's sandbox (a runtime drop-in
# replaces only its command): write a job's ProcessFailed status document,
# and find the work directories read-only (it never writes there).
RECONCILER_PROBE = """
import errno, os, sys
from pywps_gridengine.compat import write_failed_document
from pywps_gridengine.config import load

write_failed_document(load(None), "sleep", sys.argv[1], None, "42", "sandbox probe")
try:
    os.close(os.open(os.path.join(sys.argv[2], sys.argv[1]), os.O_WRONLY | os.O_CREAT, 0o644))
except OSError as error:
    sys.exit(0 if error.errno == errno.EROFS else 3)
sys.exit(4)
"""


def main_pid(host, unit: str) -> int:
    pid = int(host.check_output(f"systemctl show -P MainPID {unit}"))
    assert pid > 0, f"{unit} is not running"
    return pid


def exposure(host, unit: str) -> float:
    out = host.check_output(f"systemd-analyze security --no-pager {unit}")
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert found, out
    return float(found.group(1))


@pytest.mark.parametrize("unit", sorted(MAX_EXPOSURE))
def test_sandbox_exposure_is_low(host, unit):
    """systemd-analyze security rates each unit's sandbox; it must stay at or below its maximum."""
    assert exposure(host, unit) <= MAX_EXPOSURE[unit]


def test_gunicorn_runs_without_privileges_in_a_read_only_system(host):
    pid = main_pid(host, "pywps.service")
    status = host.file(f"/proc/{pid}/status").content_string
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"  # a system call filter
    assert int(fields["CapBnd"], 16) == 0
    assert int(fields["CapEff"], 16) == 0

    # Read as the kernel reports them (entering the namespace needs a capability
    # the test bed's containers lack): the mount each path is on, and its flags.
    mounts = {}
    for line in host.file(f"/proc/{pid}/mountinfo").content_string.splitlines():
        parts = line.split()
        mounts[parts[4].replace("\\040", " ")] = parts[5].split(",")[0]

    def flag(path: str) -> str:
        on = max((m for m in mounts if path == m or path.startswith(m.rstrip("/") + "/")), key=len)
        return mounts[on]

    read_only = ["/", "/etc/pywps", VENV, SHARED, f"{SHARED}/sge", "/run", "/run/pywps", "/home/wps", "/var/lib"]
    writable = [OUTPUTS, WORKDIR, LOGS, DATABASE_DIR, "/tmp", "/var/tmp"]  # the last two: its own
    assert {path: flag(path) for path in read_only + writable} == (
        {path: "ro" for path in read_only} | {path: "rw" for path in writable}
    )


def test_gunicorn_has_the_web_tiers_limits(host):
    shown = dict(
        line.split("=", 1)
        for line in host.check_output("systemctl show -p MemoryMax -p TasksMax pywps.service").splitlines()
    )
    total = int(host.check_output("awk '/^MemTotal:/ {print $2}' /proc/meminfo")) * 1024
    # 75% of the host's memory, as systemd rounds it down to whole pages.
    assert abs(int(shown["MemoryMax"]) - total * 3 // 4) <= 4096, shown
    assert shown["TasksMax"] == "4096"


def test_the_cleanup_deletes_old_orphans_inside_its_sandbox(host):
    """A real run of the unit: orphans older than the retention in outputs and work dirs are gone."""
    job = str(uuid.uuid4())
    document = f"{OUTPUTS}/{job}.xml"
    workdir = f"{WORKDIR}/pywps_process_sandbox{job[:8]}"
    young = f"{WORKDIR}/pywps_process_young{job[:8]}"
    host.check_output(
        f"runuser -u wps -- sh -c 'echo old > {document} && mkdir {workdir} {young} && echo old > {workdir}/f"
        f" && touch -d \"30 days ago\" {document} {workdir}/f {workdir}'"
    )
    try:
        run = host.run("systemctl start pywps-cleanup.service")
        assert run.rc == 0, host.run("journalctl -u pywps-cleanup.service -n 30 --no-pager").stdout
        assert host.check_output("systemctl show -P Result pywps-cleanup.service") == "success"
        assert not host.file(document).exists
        assert not host.file(workdir).exists
        assert host.file(young).is_directory  # within the retention: kept
    finally:
        host.run(f"rm -rf {document} {workdir} {young}")


def test_the_reconciler_writes_status_documents_inside_its_sandbox(host):
    """The reconciler's unit (stopped here: no Grid Engine) runs its document writer with its own sandbox."""
    unit = "pywps-reconciler.service"
    dropin = f"/run/systemd/system/{unit}.d"
    job = str(uuid.uuid4())
    host.check_output(f"printf %s {shlex.quote(RECONCILER_PROBE)} > /run/pywps-sandbox-probe.py")
    host.check_output(
        f"mkdir -p {dropin} && printf '%s\\n' '[Service]' 'Type=oneshot' 'Restart=no' 'ExecStart='"
        f" 'ExecStart={VENV}/bin/python /run/pywps-sandbox-probe.py {job} {WORKDIR}' > {dropin}/probe.conf"
        " && systemctl daemon-reload"
    )
    try:
        run = host.run(f"systemctl start {unit}")
        assert run.rc == 0, host.run(f"journalctl -u {unit} -n 30 --no-pager").stdout
        document = host.file(f"{OUTPUTS}/{job}.xml")
        assert document.user == "wps"
        assert "ProcessFailed" in document.content_string and "sandbox probe" in document.content_string
    finally:
        host.run(f"rm -rf {dropin} /run/pywps-sandbox-probe.py {OUTPUTS}/{job}.xml && systemctl daemon-reload")
    assert host.check_output(f"systemctl show -P ActiveState {unit}") == "inactive"


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"pywps_memory_max": "2X"}, "pywps_memory_max"),
        ({"pywps_memory_max": "150%"}, "pywps_memory_max"),
        ({"pywps_tasks_max": "0"}, "pywps_tasks_max"),
        ({"pywps_sync_max_runtime": 300, "pywps_gunicorn_timeout": 300}, "pywps_sync_max_runtime"),
        ({"pywps_sync_max_runtime": 0}, "pywps_sync_max_runtime"),
    ],
)
def test_bad_limits_stop_the_role_before_it_changes_anything(host, variables, named):
    unit = "/etc/systemd/system/pywps.service"
    before = host.file(unit).sha256sum
    message = refusal(*run_playbook("web", variables), "pw-web")
    assert f"{named} (" in message, message
    assert host.file(unit).sha256sum == before



@pytest.mark.parametrize("unit", ["pywps.service", "pywps-reconciler.service", "pywps-cleanup.service"])
def test_the_units_that_use_the_shared_tree_wait_for_its_mount(host, unit):
    """RequiresMountsFor: at boot they start after the shared tree's mount, and never against
    the empty mount point (the default scenario checks the order on its mounted volume, the
    nfs scenario's VM across a real reboot)."""
    # systemd lists there the unit's own paths too (runtime, working and temporary directories).
    assert SHARED in host.check_output(f"systemctl show -P RequiresMountsFor {unit}").split()
