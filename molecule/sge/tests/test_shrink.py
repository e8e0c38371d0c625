"""Shrinking: playbooks/sge-drain.yml retires sge-exec3 without killing the
job running there. Runs after test_sge.py (files run in name order)."""

import os
import subprocess
import time

from pwgtest import INVENTORY, accounting, as_user, remote

QMASTER = "sge-qmaster"
testinfra_hosts = ["sge-submit"]


def test_drain_retires_a_host_without_killing_its_job(host):
    """Last: playbooks/sge-drain.yml waits for a running job, then unregisters sge-exec3."""
    job_id = as_user(
        host, "qsub -terse -o /dev/null -e /dev/null -b y -l hostname=sge-exec3 sleep 6"
    ).stdout.strip()
    for _ in range(20):
        if " r " in f" {as_user(host, 'qstat').stdout} ":
            break
        time.sleep(0.5)
    inventory_dir = os.path.dirname(INVENTORY)
    playbook = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "playbooks", "sge-drain.yml")
    run = subprocess.run(
        ["ansible-playbook", "-i", inventory_dir, playbook, "-e", "sge_drain_hosts=sge-exec3 sge_drain_poll=1"],
        capture_output=True, text=True, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    record = accounting(remote(QMASTER), job_id)
    assert record["hostname"] == "sge-exec3"
    assert record["exit_status"].split()[0] == "0"
    assert record["failed"].split()[0] == "0"
    qmaster = remote(QMASTER)
    assert "sge-exec3" not in qmaster.check_output("qconf -sel").split()
    assert "sge-exec3" not in qmaster.check_output("qconf -shgrp_resolved @allhosts").split()
    assert "sge-exec3" not in qmaster.check_output("qconf -sq all.q")
