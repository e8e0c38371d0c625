"""Shrinking: playbooks/sge-drain.yml retires sge-exec3 without killing the
job running there; it refuses, before it changes anything, a host Grid Engine
does not know and a drain of every exec host, and names the jobs that outlive
its timeout. Runs after test_sge.py (files run in name order)."""

import os
import subprocess
import time

from pwgtest import INVENTORY, accounting, as_user, remote

QMASTER = "sge-qmaster"
testinfra_hosts = ["sge-submit"]


def drain(hosts: str, *extra: str) -> subprocess.CompletedProcess:
    """playbooks/sge-drain.yml; its stdout and stderr (where molecule's settings send a failure) in
    ``stdout``, each run of whitespace made one space (messages are folded)."""
    inventory_dir = os.path.dirname(INVENTORY)
    playbook = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "playbooks", "sge-drain.yml")
    run = subprocess.run(
        ["ansible-playbook", "-i", inventory_dir, playbook, "-e", f"sge_drain_hosts={hosts} sge_drain_poll=1",
         *extra],
        capture_output=True, text=True, check=False, timeout=300,
        env=dict(os.environ, ANSIBLE_RESULT_FORMAT="json"),
    )
    run.stdout = " ".join(f"{run.stdout} {run.stderr}".split())
    return run


def wait_running(host, job_id: str) -> None:
    for _ in range(60):
        lines = as_user(host, "qstat").stdout.splitlines()
        if any(line.split()[:1] == [job_id] and " r " in f" {line} " for line in lines):
            return
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not start")


def queue_states(qmaster) -> dict[str, str]:
    """Each queue instance of all.q and its state letters ('' when it takes jobs)."""
    out = qmaster.check_output("qstat -f -q all.q -u '*'")
    states = {}
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0].startswith("all.q@"):
            states[fields[0].split("@", 1)[1]] = fields[5] if len(fields) > 5 else ""
    return states


def test_drain_of_a_host_grid_engine_does_not_know_changes_nothing():
    qmaster = remote(QMASTER)
    before = (qmaster.check_output("qconf -sel"), queue_states(qmaster))
    run = drain("sge-exec3,sge-exec9")
    assert run.returncode != 0
    assert "sge_qmaster_drain_hosts names sge-exec9, which is not an exec host" in run.stdout
    assert "Nothing was changed" in run.stdout
    assert (qmaster.check_output("qconf -sel"), queue_states(qmaster)) == before


def test_drain_of_every_exec_host_is_refused():
    qmaster = remote(QMASTER)
    registered = qmaster.check_output("qconf -sel").split()
    assert len(registered) >= 2
    before = queue_states(qmaster)
    run = drain(",".join(registered))
    assert run.returncode != 0
    assert "names every exec host" in run.stdout
    assert queue_states(qmaster) == before and "d" not in "".join(before.values())
    assert qmaster.check_output("qconf -sel").split() == registered


def test_a_job_outliving_the_drain_timeout_is_named_and_the_host_stays(host):
    qmaster = remote(QMASTER)
    job_id = as_user(
        host, "qsub -terse -o /dev/null -e /dev/null -b y -l hostname=sge-exec3 sleep 20"
    ).stdout.strip()
    wait_running(host, job_id)
    try:
        run = drain("sge-exec3", "-e", "sge_drain_timeout=2")
        assert run.returncode != 0
        assert f"Jobs still run on sge-exec3 after sge_qmaster_drain_timeout (2 s): {job_id}." in run.stdout
        assert "sge-exec3" in qmaster.check_output("qconf -sel").split()
        assert "d" in queue_states(qmaster)["sge-exec3"]
    finally:
        qmaster.run("qmod -e 'all.q@sge-exec3'")
    assert "d" not in queue_states(qmaster)["sge-exec3"]


def test_drain_retires_a_host_without_killing_its_job(host):
    """Last: playbooks/sge-drain.yml waits for a running job, then unregisters sge-exec3."""
    job_id = as_user(
        host, "qsub -terse -o /dev/null -e /dev/null -b y -l hostname=sge-exec3 sleep 6"
    ).stdout.strip()
    wait_running(host, job_id)
    run = drain("sge-exec3")
    assert run.returncode == 0, run.stdout + run.stderr
    record = accounting(remote(QMASTER), job_id)
    assert record["hostname"] == "sge-exec3"
    assert record["exit_status"].split()[0] == "0"
    assert record["failed"].split()[0] == "0"
    qmaster = remote(QMASTER)
    assert "sge-exec3" not in qmaster.check_output("qconf -sel").split()
    assert "sge-exec3" not in qmaster.check_output("qconf -shgrp_resolved @allhosts").split()
    assert "sge-exec3" not in qmaster.check_output("qconf -sq all.q")
