"""Monitoring (roles/monitoring, the pywps role's exporter) on the whole cluster.

Prometheus on the monitoring host is asked through its HTTP API, from that
host: every target answers, the app's series are there with the cluster's
true figures, a job moves the counters and histograms, the alert rules pass
their unit tests with the thresholds deployed, and the exporters answer the
monitoring host only. Killing an exec host fires ExecHostDown: the fault
matrix (test_faults.py) checks it when it kills one.
"""

import shlex
import time
import xml.etree.ElementTree as ET

import pytest
import requests
from pwgtest import hosts, own_address, remote
from pwgtest import prometheus as api

MON = hosts("monitoring")[0]
WEB = hosts("web")[0]
ALL = hosts("all")
EXEC_HOSTS = hosts("sge_exec")
BASE = "http://localhost:15000"  # kept equal to demo_published_port in ../host_vars/web1.yml
NODE, METRICS, PROMETHEUS = 9100, 9641, 9090


def query(expr: str) -> list[dict]:
    return api("query", query=expr)["result"]


def wait_for(what: str, check, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(2)


def scalar(expr: str) -> float | None:
    result = query(expr)
    return float(result[0]["value"][1]) if result else None


def test_every_target_is_scraped():
    def all_up():
        active = api("targets")["activeTargets"]
        return active if active and all(t["health"] == "up" for t in active) else None

    active = wait_for("every target up", all_up)
    by_job: dict[str, set[str]] = {}
    for target in active:
        by_job.setdefault(target["labels"]["job"], set()).add(target["labels"].get("host", ""))
    assert by_job["node"] == set(ALL)
    assert by_job["pywps"] == {WEB}
    exec_labelled = {t["labels"]["host"] for t in active if t["labels"].get("sge_exec") == "yes"}
    assert exec_labelled == set(EXEC_HOSTS)


def test_the_cluster_figures_are_true():
    assert scalar("pywps_gridengine_exporter_leader") == 1
    assert scalar("pywps_gridengine_database_up") == 1
    assert scalar("pywps_gridengine_qstat_up") == 1
    up = {r["metric"]["exec_host"]: float(r["value"][1]) for r in query("pywps_gridengine_exec_host_up")}
    assert up == {name: 1.0 for name in EXEC_HOSTS}
    slots = scalar('sum(pywps_gridengine_exec_host_slots{kind="total"})')
    assert slots and slots >= len(EXEC_HOSTS)
    free = query("pywps_gridengine_shared_tree_free_bytes")
    assert free and all(float(r["value"][1]) > 0 for r in free)
    assert scalar("min(pywps_gridengine_shared_tree_up)") == 1
    # A reconciler leads and has passed lately.
    assert scalar("time() - max(pywps_gridengine_reconciler_last_pass_timestamp_seconds)") < 60
    # The database host's node exporter serves the backup's time (the textfile collector): 0 until the
    # first nightly dump, a time after it.
    assert query('node_textfile_scrape_error{host="db1"}')[0]["value"][1] == "0"
    assert query('postgresql_backup_last_success_timestamp_seconds{host="db1", database="wps"}')


def test_a_job_moves_the_counters_and_histograms():
    before = {
        "submitted": scalar('sum(pywps_gridengine_job_submissions_total{process="sleep"})') or 0,
        "waited": scalar('sum(pywps_gridengine_job_queue_wait_seconds_count{process="sleep"})') or 0,
        "ran": scalar('sum(pywps_gridengine_job_run_seconds_count{process="sleep", state="succeeded"})') or 0,
    }
    reply = requests.get(f"{BASE}/wps", params={
        "service": "WPS", "version": "1.0.0", "request": "Execute", "identifier": "sleep",
        "datainputs": "delay=1", "storeExecuteResponse": "true", "status": "true"}, timeout=60)
    assert reply.status_code == 200, reply.text
    location = ET.fromstring(reply.content).get("statusLocation")

    def succeeded():
        return b"ProcessSucceeded" in requests.get(location, timeout=10).content

    wait_for("the job's success", succeeded, 120)
    wait_for("submissions counted", lambda: (scalar('sum(pywps_gridengine_job_submissions_total{process="sleep"})')
                                             or 0) >= before["submitted"] + 1)
    wait_for("queue wait observed", lambda: (scalar(
        'sum(pywps_gridengine_job_queue_wait_seconds_count{process="sleep"})') or 0) >= before["waited"] + 1)
    wait_for("run time observed", lambda: (scalar(
        'sum(pywps_gridengine_job_run_seconds_count{process="sleep", state="succeeded"})') or 0) >= before["ran"] + 1)


def test_alert_rules_pass_their_tests_with_the_deployed_thresholds():
    mon = remote(MON)
    run = mon.run("promtool test rules /etc/prometheus/rules/pywps-gridengine.test.yml")
    assert run.rc == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout + run.stderr
    rules = {rule["name"]: rule for group in api("rules")["groups"] for rule in group["rules"]}
    assert {"ExecHostDown", "JobsWaitingTooLong", "ReconcilerNotRunning", "JobsFailingFast", "SharedTreeNearlyFull",
            "SharedTreeNotAnswering", "BackupTooOld", "DatabaseUnreachable", "TargetDown"} <= set(rules)
    assert all(rule["health"] == "ok" for rule in rules.values()), rules
    # The demo's threshold (inventories/demo/group_vars/all/demo.yml), not the role's default.
    assert rules["ExecHostDown"]["duration"] == 30


def test_no_alert_of_a_broken_part_fires_on_a_healthy_cluster():
    """The alerts on the cluster's state are silent. JobsFailingFast and BackupTooOld speak of history
    (the fault matrix fails jobs on purpose; no nightly dump has run yet) and may fire here."""
    state_alerts = {"ExecHostDown", "JobsWaitingTooLong", "ReconcilerNotRunning", "SharedTreeNearlyFull",
                    "SharedTreeNotAnswering", "DatabaseUnreachable", "TargetDown"}

    def quiet():
        return not [a for a in api("alerts")["alerts"]
                    if a["state"] == "firing" and a["labels"]["alertname"] in state_alerts]

    # After the fault matrix (an exec host killed and back), its alerts resolve within a few scrapes.
    wait_for("the state alerts resolving", quiet, 120)


EXPORTERS = [
    ("node", "db1", NODE, MON, True),
    ("node", "exec1", NODE, MON, True),
    ("node", "db1", NODE, "web1", False),
    ("node", "exec1", NODE, "qmaster", False),
    ("pywps", "web1", METRICS, MON, True),
    ("pywps", "web1", METRICS, "exec1", False),
    ("pywps", "web1", METRICS, "db1", False),
]


@pytest.mark.parametrize(("job", "target", "port", "source", "allowed"), EXPORTERS,
                         ids=[f"{j}-{t}-from-{s}-{'allowed' if ok else 'refused'}" for j, t, _, s, ok in EXPORTERS])
def test_exporters_answer_the_monitoring_host_only(job, target, port, source, allowed):
    url = f"http://{own_address(target)}:{port}/metrics"
    run = remote(source).run(f"curl -sS --max-time 3 -o /dev/null -w '%{{http_code}}' {shlex.quote(url)}")
    assert (run.rc == 0 and run.stdout == "200") is allowed, (job, target, source, run.stdout, run.stderr)


def test_metrics_are_not_on_the_front_door():
    reply = requests.get(f"{BASE}/metrics", timeout=10)
    assert reply.status_code == 404
    assert b"pywps_gridengine" not in reply.content
