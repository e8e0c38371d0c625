"""The app's Prometheus metrics, with the maintained ``prometheus-client`` library.

Two kinds of figures, from two kinds of process:

* Events, counted where they happen. The gunicorn workers count submissions
  and refused or failed submissions; the reconciler counts its verdicts and
  its passes. Each service writes them through the library's multiprocess
  mode (``PROMETHEUS_MULTIPROC_DIR``, one directory per service, emptied when
  the service starts), so every gunicorn worker's counts add up. Without that
  variable (tests, the command line) they stay in the process.
* The cluster's state, read when Prometheus scrapes: jobs by state and
  process from the job table, queue wait and run time of the jobs that
  started or ended since the last look, Grid Engine's queue depth and exec
  hosts (``qstat -f -xml``), the shared tree's free space. One collector for
  the cluster: each web host runs one exporter (``pywps-gridengine-exporter``,
  not in a web worker), and only the one holding the database's advisory
  lock reads the cluster; the others serve their own host's counts, and say
  ``pywps_gridengine_exporter_leader 0``.

The exporter listens where the role puts it (the host's cluster address,
admitted by the host firewall from the monitoring hosts only), never on the
public front door.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ElementTree  # parses only qstat's own output
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LOGGER = logging.getLogger(__name__)

# -- events, counted where they happen ---------------------------------------------------------

#: The label of a process identifier no deployed process has (a client's typo, a hostile request):
#: labels stay a bounded set whatever clients send.
OTHER = "other"
_KNOWN_PROCESSES: set[str] = set()

SUBMISSIONS = Counter("pywps_gridengine_job_submissions", "Asynchronous WPS jobs handed to Grid Engine.",
                      ["process"])
SUBMISSION_FAILURES = Counter(
    "pywps_gridengine_job_submission_failures",
    "Execute requests refused at the door and asynchronous jobs not handed to Grid Engine, by cause "
    "(over_cap, database_down, shared_tree_down, scheduler_down, configuration).",
    ["process", "cause"])
VERDICTS = Counter(
    "pywps_gridengine_reconciler_verdicts",
    "Jobs the reconciler failed, submitted again or whose status document it repaired, by cause.",
    ["verdict", "cause"])
DISMISSALS = Counter("pywps_gridengine_job_dismissals",
                     "Asynchronous WPS jobs dismissed by a client (WPS Dismiss, OGC API DELETE).", ["process"])
RECONCILER_PASSES = Counter("pywps_gridengine_reconciler_passes",
                            "Reconciler passes, by result (led, not_leader, database_unreachable).", ["result"])
RECONCILER_LAST_PASS = Gauge("pywps_gridengine_reconciler_last_pass_timestamp_seconds",
                             "When a reconciler last completed a pass as the leader.", multiprocess_mode="max")

# The causes of a refused or failed submission (admission's texts, as labels).
OVER_CAP = "over_cap"
DATABASE_DOWN = "database_down"
SHARED_TREE_DOWN = "shared_tree_down"
SCHEDULER_DOWN = "scheduler_down"
CONFIGURATION = "configuration"


def know_processes(identifiers: Iterable[str]) -> None:
    """The deployed processes: the only identifiers used as labels."""
    _KNOWN_PROCESSES.update(identifiers)


def process_label(identifier: Any) -> str:
    text = str(identifier or "")
    return text if text in _KNOWN_PROCESSES else OTHER


def submitted(identifier: Any) -> None:
    SUBMISSIONS.labels(process_label(identifier)).inc()


def submission_failed(identifier: Any, cause: str) -> None:
    SUBMISSION_FAILURES.labels(process_label(identifier), cause).inc()


def dismissed(identifier: Any) -> None:
    DISMISSALS.labels(process_label(identifier)).inc()


def verdict(kind: str, cause: str) -> None:
    VERDICTS.labels(kind, cause).inc()


def reconciler_pass(result: str, now: float | None = None) -> None:
    RECONCILER_PASSES.labels(result).inc()
    if result == "led":
        RECONCILER_LAST_PASS.set(time.time() if now is None else now)


# -- the cluster's state, read at scrape time ------------------------------------------------

#: Queue wait (submit to start): a trivial job waits about a second; a full cluster hours.
WAIT_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
#: Run time (start to end): seconds for a test, days for a model run.
RUN_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400, 259200)


@dataclass
class QueueInstance:
    host: str
    queue: str
    states: str = ""
    slots_used: int = 0
    slots_total: int = 0


@dataclass
class GridEngineView:
    """What ``qstat -u '*' -f -xml`` says: queue instances and job counts by state."""

    instances: list[QueueInstance] = field(default_factory=list)
    jobs: dict[str, int] = field(default_factory=dict)


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def parse_qstat_full(xml_text: str) -> GridEngineView:
    """Queue instances (host, states, slots) and jobs by state (running, pending, error, ...).

    A job's state letters (``<state>``: r, t, qw, hqw, Eqw, ...) decide: an
    ``E`` is an error whatever else, an ``h`` held, a ``q`` or ``w`` pending,
    an ``r`` or ``t`` running, an ``s``/``S``/``T`` suspended.
    """
    root = ElementTree.fromstring(xml_text)
    view = GridEngineView()
    for queue in root.iter("Queue-List"):
        name = queue.findtext("name") or ""
        qname, _, host = name.partition("@")
        view.instances.append(QueueInstance(host=host or name, queue=qname, states=queue.findtext("state") or "",
                                            slots_used=_int(queue.findtext("slots_used")),
                                            slots_total=_int(queue.findtext("slots_total"))))
    for job in root.iter("job_list"):
        letters = job.findtext("state") or ""
        if "E" in letters:
            state = "error"
        elif "h" in letters:
            state = "held"
        elif any(c in letters for c in "sST"):
            state = "suspended"
        elif "r" in letters or "t" in letters:
            state = "running"
        else:
            state = "pending"
        view.jobs[state] = view.jobs.get(state, 0) + 1
    return view


def host_up(states: str) -> bool:
    """A queue instance whose execd the qmaster hears (no ``u``, unknown, and no ``E``, error)."""
    return "u" not in states and "E" not in states


class Qstat:
    """``qstat -u '*' -f -xml``, cached for ``ttl`` seconds: one call per scrape interval, whatever scrapes."""

    TIMEOUT = 20.0

    def __init__(self, command: Sequence[str] = ("qstat", "-u", "*", "-f", "-xml"), ttl: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.command = list(command)
        self.ttl = ttl
        self.clock = clock
        self._at: float | None = None
        self._view: GridEngineView | None = None

    def view(self) -> GridEngineView | None:
        now = self.clock()
        if self._at is not None and now - self._at < self.ttl:
            return self._view
        self._at = now
        try:
            proc = subprocess.run(self.command, capture_output=True, text=True, errors="replace",
                                  timeout=self.TIMEOUT, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.strip()[:200]}")
            self._view = parse_qstat_full(proc.stdout)
        except (OSError, subprocess.TimeoutExpired, RuntimeError, ElementTree.ParseError) as e:
            LOGGER.warning("qstat for the metrics failed: %s", e)
            self._view = None
        return self._view


class FreeSpace:
    """Free and total bytes of the shared tree, read in a thread so a hung NFS mount cannot hang a scrape.

    A probe still running from an earlier scrape is not started again: the
    tree is then reported as not answering (``..._up 0``).
    """

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout
        self._thread: threading.Thread | None = None

    def read(self) -> tuple[int, int] | None:
        if self._thread is not None and self._thread.is_alive():
            return None
        box: dict[str, tuple[int, int] | None] = {"usage": None}

        def probe() -> None:
            try:
                usage = shutil.disk_usage(self.path)
                box["usage"] = (usage.free, usage.total)
            except OSError as e:
                LOGGER.warning("free space of %s unknown: %s", self.path, e)

        thread = threading.Thread(target=probe, name="shared-tree-free-space", daemon=True)
        self._thread = thread
        thread.start()
        thread.join(self.timeout)
        return None if thread.is_alive() else box["usage"]


class Timings:
    """Queue wait and run time histograms per process, observed once per job from the job table.

    Each look reads the jobs that started (or ended) since a little before the
    last look (``overlap``: a row's time is the database's clock when the
    statement ran, its commit can come later) and skips those already seen.
    """

    def __init__(self, registry: CollectorRegistry, overlap: float = 120.0) -> None:
        self.overlap = dt.timedelta(seconds=overlap)
        self.wait = Histogram("pywps_gridengine_job_queue_wait_seconds",
                              "Time from a job's submission to Grid Engine to its start on an exec host.",
                              ["process"], buckets=WAIT_BUCKETS, registry=registry)
        self.run = Histogram("pywps_gridengine_job_run_seconds",
                             "Time from a job's start to its end, by process and final state.",
                             ["process", "state"], buckets=RUN_BUCKETS, registry=registry)
        self._started: dict[str, dt.datetime] = {}
        self._finished: dict[str, dt.datetime] = {}
        self._since: dt.datetime | None = None

    def start_from(self, now: dt.datetime) -> None:
        """Begin at ``now``: what happened before this exporter led is not counted twice."""
        self._since = now
        self._started.clear()
        self._finished.clear()

    def look(self, store: Any, now: dt.datetime) -> None:
        if self._since is None:
            self.start_from(now)
        assert self._since is not None
        since = self._since - self.overlap
        for row in store.timings_since(since):
            if row.started_at is not None and row.started_at >= since and row.uuid not in self._started:
                self._started[row.uuid] = row.started_at
                if row.submitted_at is not None:
                    self.wait.labels(process_label(row.identifier)).observe(
                        max(0.0, (row.started_at - row.submitted_at).total_seconds()))
            if row.finished_at is not None and row.finished_at >= since and row.uuid not in self._finished:
                self._finished[row.uuid] = row.finished_at
                if row.started_at is not None:
                    self.run.labels(process_label(row.identifier), row.state).observe(
                        max(0.0, (row.finished_at - row.started_at).total_seconds()))
        self._since = now
        # The next look reads from now - overlap: what is older cannot come back.
        cut = now - self.overlap
        for seen in (self._started, self._finished):
            for uuid in [uuid for uuid, when in seen.items() if when < cut]:
                del seen[uuid]


class ClusterCollector(Collector):
    """The cluster's figures, when this exporter leads (see the module's docstring)."""

    def __init__(self, store: Any, *, leader: Any, qstat: Qstat, free_space: Iterable[FreeSpace],
                 timings: Timings, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.store = store
        self.leader = leader
        self.qstat = qstat
        self.free_space = list(free_space)
        self.timings = timings
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None))
        self._led = False
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Any]:
        with self._lock:  # two scrapes at once read the cluster once each, in turn
            yield from self._collect()

    def _collect(self) -> Iterator[Any]:
        leads = self.leader.acquire()
        yield GaugeMetricFamily("pywps_gridengine_exporter_leader",
                                "1 on the exporter that reads the cluster's figures (one per cluster).",
                                value=1 if leads else 0)
        if not leads:
            self._led = False
            return
        now = self.clock()
        if not self._led:
            self.timings.start_from(now)
            self._led = True
        yield from self._database(now)
        yield from self._grid_engine()
        yield from self._shared_tree()

    def _database(self, now: dt.datetime) -> Iterator[Any]:
        up = GaugeMetricFamily("pywps_gridengine_database_up", "1 when the job database answers the exporter.")
        try:
            counts = self.store.counts_by_process_state()
            oldest = self.store.oldest_queued(now)
            self.timings.look(self.store, now)
        except Exception as e:  # noqa: BLE001 - any database failure is "down", told in the log
            LOGGER.warning("job database unreachable for the metrics: %s", str(e).splitlines()[0] if str(e) else e)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        jobs = GaugeMetricFamily("pywps_gridengine_jobs", "WPS jobs in the job table, by process and state.",
                                 labels=["process", "state"])
        merged: dict[tuple[str, str], int] = {}
        for (identifier, state), count in counts.items():
            key = (process_label(identifier), state)
            merged[key] = merged.get(key, 0) + count
        for (process, state), count in sorted(merged.items()):
            jobs.add_metric([process, state], count)
        yield jobs
        yield GaugeMetricFamily("pywps_gridengine_oldest_queued_job_seconds",
                                "Age of the oldest job handed to Grid Engine that has not started (0: none).",
                                value=oldest)

    def _grid_engine(self) -> Iterator[Any]:
        view = self.qstat.view()
        yield GaugeMetricFamily("pywps_gridengine_qstat_up", "1 when qstat answered the exporter.",
                                value=0 if view is None else 1)
        if view is None:
            return
        depth = GaugeMetricFamily("pywps_gridengine_queue_jobs",
                                  "Grid Engine jobs of every user, by state (pending, running, error, held, "
                                  "suspended).", labels=["state"])
        for state in ("pending", "running", "error", "held", "suspended"):
            depth.add_metric([state], view.jobs.get(state, 0))
        yield depth
        # "exec_host", not "host": Prometheus's target label "host" names the web host scraped.
        up = GaugeMetricFamily("pywps_gridengine_exec_host_up",
                               "1 when the qmaster hears the exec host's execd (no queue instance in state u or E).",
                               labels=["exec_host"])
        disabled = GaugeMetricFamily("pywps_gridengine_exec_host_disabled",
                                     "1 when every queue instance of the host is disabled (drained).",
                                     labels=["exec_host"])
        slots = GaugeMetricFamily("pywps_gridengine_exec_host_slots", "Slots of the host's queue instances.",
                                  labels=["exec_host", "kind"])
        hosts: dict[str, list[QueueInstance]] = {}
        for instance in view.instances:
            hosts.setdefault(instance.host, []).append(instance)
        for host, instances in sorted(hosts.items()):
            up.add_metric([host], 1 if all(host_up(i.states) for i in instances) else 0)
            disabled.add_metric([host], 1 if all("d" in i.states for i in instances) else 0)
            slots.add_metric([host, "used"], sum(i.slots_used for i in instances))
            slots.add_metric([host, "total"], sum(i.slots_total for i in instances))
        yield up
        yield disabled
        yield slots

    def _shared_tree(self) -> Iterator[Any]:
        up = GaugeMetricFamily("pywps_gridengine_shared_tree_up",
                               "1 when the shared tree answered a free-space probe in time.", labels=["path"])
        free = GaugeMetricFamily("pywps_gridengine_shared_tree_free_bytes",
                                 "Bytes free on the shared tree's filesystem (for the service user).",
                                 labels=["path"])
        size = GaugeMetricFamily("pywps_gridengine_shared_tree_size_bytes",
                                 "Size of the shared tree's filesystem.", labels=["path"])
        for probe in self.free_space:
            usage = probe.read()
            up.add_metric([probe.path], 0 if usage is None else 1)
            if usage is not None:
                free.add_metric([probe.path], usage[0])
                size.add_metric([probe.path], usage[1])
        yield up
        yield free
        yield size


# -- the exporter --------------------------------------------------------------------------------

class MultiProcessFiles(Collector):
    """The services' multiprocess files, every directory merged as one.

    prometheus-client's ``MultiProcessCollector`` reads one directory; two of
    them registered side by side would each yield a metric both services
    define (a gauge every process creates at import) and serve it twice. Its
    ``merge`` over the files of every directory gives each metric once,
    summed (counters) or by the gauge's mode (``max`` for the last pass).
    """

    def __init__(self, directories: Sequence[str]) -> None:
        self.directories = list(directories)

    def collect(self) -> Iterable[Any]:
        from prometheus_client.multiprocess import MultiProcessCollector

        files = sorted(path for directory in self.directories for path in glob.glob(os.path.join(directory, "*.db")))
        return MultiProcessCollector.merge(files, accumulate=True)


def registry_for(multiprocess_dirs: Sequence[str]) -> CollectorRegistry:
    """A registry serving the services' multiprocess files (see :class:`MultiProcessFiles`)."""
    registry = CollectorRegistry()
    registry.register(MultiProcessFiles(multiprocess_dirs))
    return registry


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pywps-gridengine-exporter",
                                     description="Serve the app's and the cluster's Prometheus metrics.")
    parser.add_argument("-c", "--config", help="pywps.cfg to use (default: $PYWPS_CFG)")
    parser.add_argument("--listen", default="127.0.0.1:9641",
                        help="address:port to serve /metrics on (default 127.0.0.1:9641; [v6]:port for IPv6)")
    parser.add_argument("--multiprocess-dir", action="append", default=[], metavar="DIR",
                        help="a service's PROMETHEUS_MULTIPROC_DIR to serve (repeat for each service)")
    parser.add_argument("--qstat-ttl", type=float, default=10.0, help="seconds a qstat answer is reused")
    return parser.parse_args(argv)


def split_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen must be address:port, not {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - an explicit ":port" means every address


def main(argv: Sequence[str] | None = None) -> int:
    from prometheus_client import start_http_server

    from .config import load
    from .jobs import JobStore

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        print("pywps-gridengine-exporter: run it without PROMETHEUS_MULTIPROC_DIR (it reads the services' "
              "directories given with --multiprocess-dir)", file=sys.stderr)
        return 2
    try:
        address, port = split_listen(args.listen)
    except ValueError as e:
        print(f"pywps-gridengine-exporter: {e}", file=sys.stderr)
        return 2
    config = load(args.config)
    from .processes import get_processes

    know_processes(process.identifier for process in get_processes())
    registry = registry_for(args.multiprocess_dir)
    store = JobStore.for_config(config)
    paths = [config.outputpath]
    if config.workdir and os.path.realpath(config.workdir) != os.path.realpath(config.outputpath):
        paths.append(config.workdir)
    collector = ClusterCollector(store, leader=store.leader_lock("pywps-gridengine-exporter"),
                                 qstat=Qstat(ttl=args.qstat_ttl), free_space=[FreeSpace(p) for p in paths],
                                 timings=Timings(registry))
    registry.register(collector)
    server, thread = start_http_server(port, addr=address, registry=registry)
    LOGGER.info("serving metrics on %s:%d", address, port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    thread.join(5)
    collector.leader.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
