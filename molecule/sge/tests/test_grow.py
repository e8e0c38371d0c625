"""Growing: playbooks/sge-scale-out.yml adds sge-exec3 (in group spare of the
scenario's inventory; an extra inventory source puts it in sge_exec, as an
operator edits the inventory) during a burst of jobs. The new host receives
jobs, every job of the burst ends well, and only the new host and the qmaster
are changed. Runs first (files run in name order): test_sge.py and
test_shrink.py then use the three exec hosts."""

import os
import subprocess
import time

from pwgtest import INVENTORY, accounting, as_user, remote, run_playbook

QMASTER = "sge-qmaster"
NEW = "sge-exec3"
testinfra_hosts = ["sge-submit"]


def total_slots(qmaster) -> int:
    out = qmaster.check_output("qstat -f -q all.q -u '*'")
    return sum(int(line.split()[2].split("/")[-1]) for line in out.splitlines() if line.startswith("all.q@"))


def test_scale_out_during_a_burst_adds_a_host_that_takes_jobs(host, tmp_path):
    qmaster = remote(QMASTER)
    assert NEW not in qmaster.check_output("qconf -sel").split()
    slots = total_slots(qmaster)
    # Four rounds of the cluster's slots, 30 s each: jobs wait while the playbook runs.
    burst = []
    for _ in range(4 * slots):
        run = as_user(host, "qsub -terse -o /dev/null -e /dev/null -b y sleep 30")
        assert run.rc == 0, run.stderr
        burst.append(run.stdout.strip())

    extra = tmp_path / "grown.yml"
    extra.write_text(f"all:\n  children:\n    sge_exec:\n      hosts:\n        {NEW}:\n")
    run, report = run_playbook("sge-scale-out", {"sge_scale_out_hosts": NEW}, "-i", str(extra))
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    changed = {name for name, stats in report["stats"].items() if stats.get("changed")}
    assert changed <= {NEW, QMASTER} and NEW in changed, report["stats"]
    assert NEW in qmaster.check_output("qconf -sel").split()

    # Every job of the burst ends well, some of them on the new host.
    deadline = time.monotonic() + 600
    while as_user(host, "qstat -u '*'").stdout.strip():
        assert time.monotonic() < deadline, as_user(host, "qstat -u '*'").stdout
        time.sleep(5)
    records = {job: accounting(qmaster, job) for job in burst}
    bad = {job: r for job, r in records.items()
           if r["exit_status"].split()[0] != "0" or r["failed"].split()[0] != "0"}
    assert not bad, bad
    assert NEW in {r["hostname"] for r in records.values()}, {r["hostname"] for r in records.values()}


def test_scale_out_refuses_a_host_outside_sge_exec():
    qmaster = remote(QMASTER)
    before = qmaster.check_output("qconf -sel")
    playbook = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "playbooks", "sge-scale-out.yml")
    run = subprocess.run(["ansible-playbook", "-i", os.path.dirname(INVENTORY), playbook,
                          "-e", "sge_scale_out_hosts=sge-submit,nosuchhost"],
                         capture_output=True, text=True, check=False, timeout=300)
    text = " ".join(f"{run.stdout} {run.stderr}".split())
    assert run.returncode != 0
    assert "sge_scale_out_hosts must name hosts of group sge_exec" in text
    assert "not in sge_exec: nosuchhost, sge-submit" in text
    assert "Nothing was changed" in text
    assert qmaster.check_output("qconf -sel") == before
