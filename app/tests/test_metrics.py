"""The app's Prometheus metrics: the exporter's cluster figures, the counters, multiprocess mode."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from test_reconciler import T0, Clock, add_job

from pywps_gridengine import metrics
from pywps_gridengine.jobs import JobStore
from pywps_gridengine.reconciler import (
    JobInfo,
    SgeState,
    finished_verdict,
)

QSTAT_XML = """<?xml version='1.0'?>
<job_info xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
    <Queue-List>
      <name>all.q@exec1</name><qtype>BP</qtype><slots_used>1</slots_used><slots_resv>0</slots_resv>
      <slots_total>2</slots_total><load_avg>0.5</load_avg><arch>lx-amd64</arch>
      <job_list state="running"><JB_job_number>7</JB_job_number><state>r</state></job_list>
    </Queue-List>
    <Queue-List>
      <name>all.q@exec2</name><qtype>BP</qtype><slots_used>0</slots_used><slots_resv>0</slots_resv>
      <slots_total>2</slots_total><arch>lx-amd64</arch><state>au</state>
    </Queue-List>
    <Queue-List>
      <name>all.q@exec3</name><qtype>BP</qtype><slots_used>0</slots_used><slots_resv>0</slots_resv>
      <slots_total>4</slots_total><arch>lx-amd64</arch><state>d</state>
    </Queue-List>
  </queue_info>
  <job_info>
    <job_list state="pending"><JB_job_number>8</JB_job_number><state>qw</state></job_list>
    <job_list state="pending"><JB_job_number>9</JB_job_number><state>qw</state></job_list>
    <job_list state="pending"><JB_job_number>10</JB_job_number><state>Eqw</state></job_list>
    <job_list state="pending"><JB_job_number>11</JB_job_number><state>hqw</state></job_list>
  </job_info>
</job_info>
"""


def empty_directory(path: str) -> None:
    """A service's multiprocess directory without the files of an earlier run (systemd's RuntimeDirectory does
    this for the units)."""
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.unlink(os.path.join(path, name))


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``registry``, read back through the text format Prometheus scrapes."""
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return samples(registry).get((name, tuple(sorted(labels.items()))))


def test_parse_qstat_full():
    view = metrics.parse_qstat_full(QSTAT_XML)
    assert [(i.host, i.queue, i.states, i.slots_used, i.slots_total) for i in view.instances] == [
        ("exec1", "all.q", "", 1, 2), ("exec2", "all.q", "au", 0, 2), ("exec3", "all.q", "d", 0, 4)]
    assert view.jobs == {"running": 1, "pending": 2, "error": 1, "held": 1}


def test_host_up_reads_unknown_and_error_states():
    assert metrics.host_up("") and metrics.host_up("d") and metrics.host_up("a")
    assert not metrics.host_up("au") and not metrics.host_up("u") and not metrics.host_up("E")


def test_process_label_is_bounded():
    metrics.know_processes(["sleep", "hello"])
    assert metrics.process_label("sleep") == "sleep"
    assert metrics.process_label("x" * 5000) == metrics.OTHER
    assert metrics.process_label(None) == metrics.OTHER


@pytest.mark.parametrize("text", ["9641", "host:", "host:0", "host:70000", "host:abc"])
def test_split_listen_refuses(text):
    with pytest.raises(ValueError, match="address:port"):
        metrics.split_listen(text)


def test_split_listen():
    assert metrics.split_listen("10.0.0.5:9641") == ("10.0.0.5", 9641)
    assert metrics.split_listen("[::1]:9641") == ("::1", 9641)


class Leader:
    def __init__(self, leads: bool | None) -> None:
        self.leads = leads

    def acquire(self) -> bool | None:
        return self.leads

    def release(self) -> None:
        pass


@pytest.fixture
def cluster(make_env, tmp_path):
    env = make_env()
    store = JobStore.for_config(env.config)
    metrics.know_processes(["sleep", "hello"])
    qstat_file = tmp_path / "qstat.xml"
    qstat_file.write_text(QSTAT_XML)
    registry = CollectorRegistry()
    clock = Clock(T0)
    leader = Leader(True)
    collector = metrics.ClusterCollector(
        store, leader=leader, qstat=metrics.Qstat(["cat", str(qstat_file)], ttl=0),
        free_space=[metrics.FreeSpace(str(env.outputs))], timings=metrics.Timings(registry), clock=clock)
    registry.register(collector)
    return env, store, registry, clock, leader


def test_cluster_figures(cluster):
    env, store, registry, clock, _ = cluster
    add_job(store, "a-running", "7", started=True)
    add_job(store, "b-queued", "8", started=False)
    add_job(store, "c-queued", "9", started=False)
    store.create("d-other", "no-such-process", now=T0)
    clock.advance(90)
    got = samples(registry)
    assert got[("pywps_gridengine_exporter_leader", ())] == 1
    assert got[("pywps_gridengine_database_up", ())] == 1
    assert value(registry, "pywps_gridengine_jobs", process="sleep", state="started") == 1
    assert value(registry, "pywps_gridengine_jobs", process="sleep", state="accepted") == 2
    assert value(registry, "pywps_gridengine_jobs", process="other", state="accepted") == 1
    assert got[("pywps_gridengine_oldest_queued_job_seconds", ())] == 90
    assert value(registry, "pywps_gridengine_queue_jobs", state="pending") == 2
    assert value(registry, "pywps_gridengine_queue_jobs", state="error") == 1
    assert value(registry, "pywps_gridengine_queue_jobs", state="suspended") == 0
    assert value(registry, "pywps_gridengine_exec_host_up", exec_host="exec1") == 1
    assert value(registry, "pywps_gridengine_exec_host_up", exec_host="exec2") == 0
    assert value(registry, "pywps_gridengine_exec_host_disabled", exec_host="exec3") == 1
    assert value(registry, "pywps_gridengine_exec_host_slots", exec_host="exec3", kind="total") == 4
    path = str(env.outputs)
    assert value(registry, "pywps_gridengine_shared_tree_up", path=path) == 1
    free = value(registry, "pywps_gridengine_shared_tree_free_bytes", path=path)
    size = value(registry, "pywps_gridengine_shared_tree_size_bytes", path=path)
    assert 0 < free <= size


def test_follower_reads_nothing_of_the_cluster(cluster):
    _, store, registry, _, leader = cluster
    leader.leads = False
    add_job(store, "a-running", "7")
    got = samples(registry)
    assert got[("pywps_gridengine_exporter_leader", ())] == 0
    assert not [name for name, _ in got if name.startswith(("pywps_gridengine_jobs", "pywps_gridengine_queue"))]


def test_database_down_is_a_zero_not_an_error(cluster):
    _, store, registry, _, _ = cluster

    def broken(*_a, **_k):
        raise RuntimeError("connection refused")

    store.counts_by_process_state = broken
    got = samples(registry)
    assert got[("pywps_gridengine_database_up", ())] == 0
    assert got[("pywps_gridengine_qstat_up", ())] == 1  # the rest is still served


def test_qstat_failure_is_a_zero(make_env, tmp_path):
    env = make_env()
    registry = CollectorRegistry()
    registry.register(metrics.ClusterCollector(
        JobStore.for_config(env.config), leader=Leader(True), qstat=metrics.Qstat(["false"], ttl=0),
        free_space=[], timings=metrics.Timings(registry)))
    assert value(registry, "pywps_gridengine_qstat_up") == 0


def test_qstat_is_cached(tmp_path):
    calls = tmp_path / "calls"
    script = tmp_path / "qstat"
    script.write_text(f"#!/bin/sh\necho x >> {calls}\ncat <<'EOF'\n{QSTAT_XML}EOF\n")
    script.chmod(0o755)
    now = [0.0]
    qstat = metrics.Qstat([str(script)], ttl=10, clock=lambda: now[0])
    for t in (0, 5, 9.9, 10, 15):
        now[0] = t
        assert qstat.view() is not None
    assert len(calls.read_text().split()) == 2


def test_timings_observe_each_job_once(cluster):
    _, store, registry, clock, _ = cluster
    samples(registry)  # the first look starts the histograms at T0: nothing before counts
    store.create("j1", "sleep", now=T0 + dt.timedelta(seconds=1))
    store.set_submitted("j1", "7", "wps-sleep-j1", "", now=T0 + dt.timedelta(seconds=1))
    store.transition("j1", "started", "started", exec_host="exec1", now=T0 + dt.timedelta(seconds=4))
    clock.advance(10)
    samples(registry)
    store.record("j1", "succeeded", "done", now=T0 + dt.timedelta(seconds=34))
    clock.advance(30)
    for _ in range(3):  # looks again and again, within the overlap: counted once
        got = samples(registry)
    wait = ("pywps_gridengine_job_queue_wait_seconds", (("process", "sleep"),))
    assert got[(wait[0] + "_count", wait[1])] == 1
    assert got[(wait[0] + "_sum", wait[1])] == 3
    run = (("process", "sleep"), ("state", "succeeded"))
    assert got[("pywps_gridengine_job_run_seconds_count", run)] == 1
    assert got[("pywps_gridengine_job_run_seconds_sum", run)] == 30
    assert got[("pywps_gridengine_job_run_seconds_bucket", (("le", "30.0"), *run))] == 1
    assert got[("pywps_gridengine_job_run_seconds_bucket", (("le", "10.0"), *run))] == 0


def test_a_new_leader_starts_from_now(cluster):
    _, store, registry, clock, leader = cluster
    add_job(store, "old", "7", started=True)  # started at T0, before this exporter led
    clock.advance(5)
    got = samples(registry)
    assert ("pywps_gridengine_job_queue_wait_seconds_count", (("process", "sleep"),)) not in got


def test_free_space_of_a_hung_tree_is_unknown(tmp_path, monkeypatch):
    import threading

    release = threading.Event()

    def hung(path):
        release.wait(10)
        raise OSError("stale file handle")

    monkeypatch.setattr(metrics.shutil, "disk_usage", hung)
    probe = metrics.FreeSpace(str(tmp_path), timeout=0.2)
    assert probe.read() is None
    assert probe.read() is None  # the hung probe is not started again
    release.set()


@pytest.mark.parametrize(("info", "cause"), [
    (JobInfo(SgeState.FINISHED, exit_status=137, failed=100, deleted_by="a@b"), "deleted"),
    (JobInfo(SgeState.FINISHED, exit_status=137, wallclock=60, h_rt=60), "wallclock_limit"),
    (JobInfo(SgeState.FINISHED, exit_status=137, h_vmem="1G", maxvmem="1000M"), "memory_limit"),
    (JobInfo(SgeState.FINISHED, exit_status=143), "killed"),
    (JobInfo(SgeState.FINISHED, failed=26, failed_reason="opening input/output file"), "grid_engine_failure"),
    (JobInfo(SgeState.FINISHED, exit_status=3), "exit_status"),
    (JobInfo(SgeState.FINISHED, exit_status=0), "ended_unreported"),
])
def test_finished_cause(info, cause):
    assert finished_verdict(info, SimpleNamespace(sge_job_id="7"))[0] == cause


def test_reconciler_pass_gauge():
    metrics.reconciler_pass("led", now=1_900_000_000)
    assert REGISTRY.get_sample_value("pywps_gridengine_reconciler_last_pass_timestamp_seconds") == 1_900_000_000
    metrics.reconciler_pass("not_leader", now=2_000_000_000)
    assert REGISTRY.get_sample_value("pywps_gridengine_reconciler_last_pass_timestamp_seconds") == 1_900_000_000


def test_multiprocess_counts_add_up(tmp_path):
    """Counts of several processes (gunicorn workers) in one directory are served summed by the exporter."""
    directory = tmp_path / "web"
    empty_directory(str(directory))
    child = textwrap.dedent("""
        import sys
        from pywps_gridengine import metrics
        metrics.know_processes(["sleep"])
        for _ in range(int(sys.argv[1])):
            metrics.submitted("sleep")
        metrics.submission_failed("sleep", metrics.OVER_CAP)
        metrics.reconciler_pass("led", now=float(sys.argv[2]))
    """)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    for n, stamp in ((3, 100), (4, 200)):
        subprocess.run([sys.executable, "-c", child, str(n), str(stamp)], env=env, check=True)
    registry = metrics.registry_for([str(directory)])
    assert value(registry, "pywps_gridengine_job_submissions_total", process="sleep") == 7
    assert value(registry, "pywps_gridengine_job_submission_failures_total", process="sleep", cause="over_cap") == 2
    assert value(registry, "pywps_gridengine_reconciler_last_pass_timestamp_seconds") == 200
    empty_directory(str(directory))
    assert value(metrics.registry_for([str(directory)]), "pywps_gridengine_job_submissions_total",
                 process="sleep") is None


def test_a_gauge_of_two_services_is_served_once(tmp_path):
    """Every process creates the last-pass gauge at import (0); the reconciler's value must win, once."""
    web, reconciler = tmp_path / "web", tmp_path / "reconciler"
    for directory in (web, reconciler):
        empty_directory(str(directory))
    code = "import sys; from pywps_gridengine import metrics; metrics.reconciler_pass(sys.argv[1], now=1234.0)"
    subprocess.run([sys.executable, "-c", code, "not_leader"], check=True,
                   env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(web)})
    subprocess.run([sys.executable, "-c", code, "led"], check=True,
                   env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(reconciler)})
    text = generate_latest(metrics.registry_for([str(web), str(reconciler)])).decode()
    lines = [line for line in text.splitlines()
             if line.startswith("pywps_gridengine_reconciler_last_pass_timestamp_seconds")]
    assert lines == ["pywps_gridengine_reconciler_last_pass_timestamp_seconds 1234.0"], text
    assert 'pywps_gridengine_reconciler_passes_total{result="not_leader"} 1.0' in text
    assert 'pywps_gridengine_reconciler_passes_total{result="led"} 1.0' in text


def test_exporter_serves_http(make_env, tmp_path):
    """The exporter as its unit runs it: /metrics over HTTP, the cluster's figures and a service's counts."""
    env = make_env()
    JobStore.for_config(env.config)
    directory = tmp_path / "reconciler"
    empty_directory(str(directory))
    subprocess.run([sys.executable, "-c", "from pywps_gridengine import metrics; metrics.verdict('failed', 'gone')"],
                   env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}, check=True)
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    (fake / "qstat").write_text(f"#!/bin/sh\ncat <<'EOF'\n{QSTAT_XML}EOF\n")
    (fake / "qstat").chmod(0o755)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    environ = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    environ.update(PATH=f"{fake}:{environ['PATH']}", PYWPS_CFG=str(env.config.cfgfile))
    proc = subprocess.Popen([sys.executable, "-m", "pywps_gridengine.metrics", "--listen", f"127.0.0.1:{port}",
                             "--multiprocess-dir", str(directory)], env=environ, stderr=subprocess.PIPE, text=True)
    try:
        import time

        deadline = time.monotonic() + 30
        while True:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(proc.stderr.read() if proc.poll() is not None else "no answer") from None
                time.sleep(0.2)
        assert 'pywps_gridengine_reconciler_verdicts_total{cause="gone",verdict="failed"} 1.0' in body
        assert "pywps_gridengine_exporter_leader 1.0" in body
        assert 'pywps_gridengine_exec_host_up{exec_host="exec2"} 0.0' in body
        assert "pywps_gridengine_database_up 1.0" in body
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_exporter_refuses_a_bad_listen_and_its_own_multiprocess_dir(tmp_path, capsys, monkeypatch):
    assert metrics.main(["--listen", "nope"]) == 2
    assert "address:port" in capsys.readouterr().err
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert metrics.main([]) == 2
    assert "without PROMETHEUS_MULTIPROC_DIR" in capsys.readouterr().err


def test_identifiers_of_the_app_are_known(make_env):
    from pywps_gridengine.wsgi import create_service

    create_service(make_env().config)
    assert metrics.process_label("sleep") == "sleep"
    assert Path(metrics.__file__).name == "metrics.py"
