#!/usr/bin/env python3
"""./pwg bench: the service's speed figures, each beside its counterpart, as one table and JSON.

    ./pwg bench [--url URL [--allow-remote]] [--json .cache/bench.json] [--runs 10]
                [--jobs 200] [--clients 16] [--duration 10] [--connections 16]

Without --url it measures the local demo (./pwg demo): a load-generator
container (bench/ mounted, Debian's wrk, hey and python3-requests) joins the demo
network at the one address the demo inventory exempts from nginx's
per-client limits (nginx_limit_exempt), and sends its load to the web host's
nginx on port 80 with the service's Host header. Every client on this
machine reaches the demo through the docker gateway, one address that keeps
its limits (10 r/s, 3 at once on /wps): a load from there would measure the
limit. The async and throughput clients run in that container too, for the
same reason (16 clients polling status documents exceed the per-client
limits). The container is removed at the end.

With --url it measures that WPS from this machine (wrk, and hey if installed, from Debian here):
discovery, async latency and throughput only, since the scheduler, the exec
hosts and the database are the demo's containers. A URL whose host is not
loopback or private is refused unless --allow-remote.

Targets are printed beside each figure (ok / MISSED); the command exits 0
whatever the figures, and 1 only when a measurement could not be made.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import growth  # bench/growth.py: the growth figure (2 -> 8 exec hosts and back)
import rows as job_rows  # bench/rows.py: the job list and the clean-up at 1,000 and 100,000 job rows

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DEMO_PREFIX = "pwg-demo-"
LOADGEN = DEMO_PREFIX + "bench"
LOADGEN_PACKAGES = ["wrk", "hey", "python3-requests"]
# A scheduler configuration saved before it is changed; a run killed before
# it could restore it (SIGKILL) leaves this file, and the next run restores it.
SCHED_SAVED = ROOT / ".cache" / "bench-scheduler.conf"
# The original demo's scheduler: Debian's defaults, a scheduling run every 15 s
# and none on a submit or a job's end.
ORIGINAL_SCHEDULER = {"schedule_interval": "0:0:15", "flush_submit_sec": "0", "flush_finish_sec": "0"}

TARGETS = {
    "cached_rps": 1000.0,        # discovery through nginx's cache, requests/s
    "cached_p99_ms": 50.0,       # ... at that rate (hey, a fixed rate), not at wrk's saturation
    "async_p50_s": 1.0,          # sleep delay=0, Execute to ProcessSucceeded
    "jobs_per_min": 150.0,
}


class BenchError(Exception):
    """A measurement that could not be made, with what to do about it."""


def log(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def run(cmd: Sequence[str], *, check: bool = True, input_text: str | None = None,
        timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output; a failure raises BenchError with its stderr."""
    try:
        done = subprocess.run(list(cmd), input=input_text, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"{' '.join(cmd[:6])} ... did not end within {timeout} s") from e
    if check and done.returncode != 0:
        raise BenchError(f"{' '.join(cmd[:8])} ... exited {done.returncode}: "
                         f"{(done.stderr or done.stdout).strip()[-800:]}")
    return done


def last_json(text: str) -> Any:
    """The last line of a tool's output that is a JSON document."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith(("{", "[")):
            return json.loads(line)
    raise BenchError(f"no JSON in: {text[-500:]}")


def is_local_host(host: str) -> tuple[bool, list[str]]:
    """Whether every address the host resolves to is loopback or private, and the addresses."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as e:
        raise BenchError(f"cannot resolve {host}: {e}") from e
    addresses = sorted({info[4][0] for info in infos})
    local = all(ipaddress.ip_address(a.split("%")[0]).is_loopback or ipaddress.ip_address(a.split("%")[0]).is_private
                for a in addresses)
    return local, addresses


# --- where the load comes from -------------------------------------------------------------------


class Runner:
    """Runs the load tools: here (a URL given) or in the demo's load generator."""

    python = sys.executable
    bench_dir = str(BENCH)

    def has(self, tool: str) -> bool:
        return shutil.which(tool) is not None

    def exec(self, cmd: Sequence[str], env: dict[str, str] | None = None,
             timeout: float | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        full = ["env", *(f"{k}={v}" for k, v in (env or {}).items()), *cmd]
        return run(full, timeout=timeout, check=check)


class LoadGenerator(Runner):
    """A container on the demo network at the address nginx exempts from its per-client limits."""

    python = "python3"
    bench_dir = "/opt/bench"

    def __init__(self, network: str, address: str, base_image: str) -> None:
        self.network, self.address, self.base_image = network, address, base_image
        # The base image with the load tools, built once per base image and package list.
        tools = hashlib.sha256(" ".join(LOADGEN_PACKAGES).encode()).hexdigest()[:8]
        self.image = f"pywps-gridengine/bench-loadgen:{base_image.rsplit(':', 1)[-1]}-{tools}"

    def start(self) -> None:
        run(["docker", "rm", "-f", LOADGEN], check=False)
        cached = run(["docker", "image", "inspect", self.image], check=False).returncode == 0
        log(f"load generator {LOADGEN} at {self.address} on {self.network}"
            + ("" if cached else f" (first run: installing {', '.join(LOADGEN_PACKAGES)} from Debian)"))
        run(["docker", "run", "-d", "--name", LOADGEN, "--hostname", "bench", "--network", self.network,
             "--ip", self.address, "--label", "pwg-demo=true", "-v", f"{BENCH}:{self.bench_dir}:ro",
             self.image if cached else self.base_image, "sleep", "infinity"])
        if not cached:
            self.exec(["sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                       "--no-install-recommends " + " ".join(LOADGEN_PACKAGES) + " >/dev/null && apt-get clean"],
                      timeout=600)
            run(["docker", "commit", "--change", 'CMD ["sleep", "infinity"]', LOADGEN, self.image])

    def exec(self, cmd: Sequence[str], env: dict[str, str] | None = None,
             timeout: float | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        env_args = [arg for k, v in (env or {}).items() for arg in ("-e", f"{k}={v}")]
        return run(["docker", "exec", *env_args, LOADGEN, *cmd], timeout=timeout, check=check)

    def has(self, tool: str) -> bool:
        return tool in LOADGEN_PACKAGES

    def stop(self) -> None:
        run(["docker", "rm", "-f", LOADGEN], check=False)


@dataclass
class Target:
    """The service as the load tools address it."""

    url: str                 # the service's own URL (Host header, status locations)
    connect: str = ""        # origin the load tools send to instead (demo: the web host on its network)

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    def send_url(self, query: str) -> str:
        parts = urlsplit(self.url)
        origin = self.connect or f"{parts.scheme}://{parts.netloc}"
        return f"{origin}{parts.path}?{query}"

    def host_args(self) -> list[str]:
        return ["-H", f"Host: {self.host}"] if self.connect else []


# --- figures ---------------------------------------------------------------------------------------


def wrk(runner: Runner, target: Target, query: str, headers: Sequence[str], duration: int, connections: int,
        threads: int, max_requests: int = 0) -> dict[str, Any]:
    """One wrk run; requests/s and exact percentiles from bench/wrk_report.lua."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "5s",
           "-s", f"{runner.bench_dir}/wrk_report.lua", *target.host_args()]
    for header in headers:
        cmd += ["-H", header]
    cmd.append(target.send_url(query))
    env = {"WRK_MAX_REQUESTS": str(-(-max_requests // threads))} if max_requests else {}
    done = runner.exec(cmd, env=env, timeout=duration + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), "")
    if not line:
        raise BenchError(f"wrk printed no figures: {done.stdout[-500:]} {done.stderr[-500:]}")
    figures = json.loads(line[len("WRK_JSON "):])
    figures["rps"] = round(figures["requests"] / figures["duration_s"], 1) if figures["duration_s"] else 0.0
    figures["non_2xx"] = figures["status_errors"]
    return figures


# hey's summary (Debian's hey 0.1.4): "Requests/sec:", "NN% in S secs", "[CODE] N responses" and, under
# "Error distribution:", "[N] message" per kind of error.
_HEY_RPS = re.compile(r"^\s*Requests/sec:\s*([0-9.]+)", re.M)
_HEY_PCT = re.compile(r"^\s*(\d+)% in ([0-9.]+) secs", re.M)
_HEY_STATUS = re.compile(r"^\s*\[(\d{3})\]\s+(\d+) responses", re.M)


def parse_hey(text: str) -> dict[str, Any]:
    """requests/s, p50/p90/p99 in ms, answers by status and the error count from hey's summary."""
    rps = _HEY_RPS.search(text)
    percentiles = {int(p): float(s) * 1000 for p, s in _HEY_PCT.findall(text)}
    if not rps or not {50, 99} <= set(percentiles):
        raise BenchError(f"hey printed no figures: {text[-500:]}")
    statuses = {int(code): int(n) for code, n in _HEY_STATUS.findall(text)}
    errors = 0
    if "Error distribution:" in text:
        errors = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]\s", text.split("Error distribution:", 1)[1], re.M))
    return {"rps": float(rps[1]), "p50_ms": percentiles[50], "p90_ms": percentiles.get(90, 0.0),
            "p99_ms": percentiles[99], "statuses": statuses, "errors": errors,
            "non_2xx": sum(n for code, n in statuses.items() if not 200 <= code < 300)}


def fixed_rate(runner: Runner, target: Target, query: str, rate: int, workers: int,
               duration: int) -> dict[str, Any]:
    """Latency at a fixed offered rate (hey -q: each of the workers sends at most rate/workers a second).

    wrk measures the capacity (as fast as it can send, so its tail is the queueing of a saturated
    machine); the target's "p99 at 1,000 requests/s" is a latency at that rate, which hey offers.
    """
    cmd = ["hey", "-z", f"{duration}s", "-c", str(workers), "-q", f"{rate / workers:g}", "-t", "5"]
    if target.connect:
        cmd += ["-host", target.host]
    cmd.append(target.send_url(query))
    figures = parse_hey(runner.exec(cmd, timeout=duration + 60).stdout)
    figures["offered_rps"] = rate
    return figures


def probe(runner: Runner, target: Target, query: str, headers: Sequence[str]) -> list[dict[str, Any]]:
    cmd = [runner.python, f"{runner.bench_dir}/probe_headers.py", target.send_url(query), "--times", "2"]
    if target.connect:
        cmd += ["--host", target.host]
    for header in headers:
        cmd += ["--header", header]
    return last_json(runner.exec(cmd, timeout=120).stdout)


def cache_status(answers: list[dict[str, Any]]) -> str:
    """The cache header of the last answer, 'Name: value', or '' when nginx sent none."""
    cache = answers[-1]["cache"] if answers else {}
    names = [k for k in cache if k.lower() != "age"]
    return ", ".join(f"{k}: {cache[k]}" for k in names)


def discovery(runner: Runner, target: Target, args: argparse.Namespace) -> dict[str, Any]:
    """GetCapabilities and DescribeProcess through nginx, cached and with Cache-Control: no-cache."""
    requests_ = {"GetCapabilities": "service=WPS&request=GetCapabilities",
                 "DescribeProcess": "service=WPS&version=1.0.0&request=DescribeProcess&identifier=sleep"}
    out: dict[str, Any] = {}
    for name, query in requests_.items():
        for mode, headers in (("cached", []), ("uncached", ["Cache-Control: no-cache"])):
            answers = probe(runner, target, query, headers)  # primes the cache, shows its status
            if any(a["status"] != 200 for a in answers):
                raise BenchError(f"{name} answered {[a['status'] for a in answers]} before the load")
            log(f"wrk: {name} {mode}, {args.duration} s, {args.connections} connections")
            figures = wrk(runner, target, query, headers, args.duration, args.connections, args.threads)
            figures["cache_status"] = cache_status(answers) or "none"
            figures["bytes_per_answer"] = answers[-1]["bytes"]
            out[f"{name}_{mode}"] = figures
            # Right after the cached run: after the uncached one the app's workers go on answering
            # the requests already queued for them for a while, and this figure would measure that.
            if mode == "cached" and runner.has("hey"):
                log(f"hey: {name} cached at {args.rate} requests/s offered, {args.duration} s")
                out[f"{name}_rate"] = fixed_rate(runner, target, query, args.rate, args.rate_workers, args.duration)
            elif mode == "cached":
                log("hey is not installed (Debian: apt-get install hey): no figure at a fixed rate")
    return out


class Demo:
    """The demo's containers: the qmaster's scheduler, an exec host, the database."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings

    @staticmethod
    def exec(host: str, cmd: Sequence[str], *, user: str = "", input_text: str | None = None,
             timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["docker", "exec", *(["-i"] if input_text is not None else []), *(["-u", user] if user else []),
                    DEMO_PREFIX + host, *cmd], input_text=input_text, timeout=timeout, check=check)

    # the scheduler

    def scheduler(self) -> str:
        return self.exec(self.settings["qmaster"], ["bash", "-lc", "qconf -ssconf"]).stdout

    def set_scheduler(self, conf: str) -> None:
        self.exec(self.settings["qmaster"], ["bash", "-lc", 'f=$(mktemp) && cat >"$f" && qconf -Msconf "$f"; '
                                             'rc=$?; rm -f "$f"; exit $rc'], input_text=conf)

    def restore_saved_scheduler(self) -> None:
        """Put back a scheduler configuration a killed run left changed."""
        if SCHED_SAVED.exists():
            log(f"restoring the scheduler configuration a previous run left ({SCHED_SAVED})")
            self.set_scheduler(SCHED_SAVED.read_text())
            SCHED_SAVED.unlink()

    # the launcher's start-up

    def launcher_importtime(self, runs: int = 3) -> dict[str, Any]:
        """python -X importtime of the launcher as Grid Engine starts it on an exec host, median of runs.

        The launcher is run as the service user with its real configuration and
        a dump path that does not exist: it imports everything a job's start
        imports (configuration, PyWPS, SQLAlchemy, the app's modules), then
        exits 2 at loading the dump, before it touches the database. Not
        counted: the process's own module, which a real dump's class names.
        """
        host = self.settings["exec_host"]
        cfg = self.settings["config_file"]
        launcher = self.exec(host, ["python3", "-c", (
            "import configparser, os, sys; c = configparser.ConfigParser(interpolation=None); c.read(sys.argv[1]); "
            "g = c['gridengine'] if c.has_section('gridengine') else {}; "
            "p = c['processing'].get('path', '') if c.has_section('processing') else ''; "
            "print(g.get('launcher', '').strip() or os.path.join(p, 'pywps-gridengine-launcher'))"), cfg])
        launcher = launcher.stdout.strip()
        python = self.exec(host, ["head", "-n1", launcher]).stdout.strip().lstrip("#!").split()[0]
        dump = "/nonexistent/pwg-bench-importtime.dump"
        samples = []
        for _ in range(runs):
            start = time.monotonic()
            done = self.exec(host, [python, "-X", "importtime", launcher, "--config", cfg, dump],
                             user=self.settings["service_user"], check=False)
            wall = time.monotonic() - start
            if done.returncode != 2:
                raise BenchError(f"the launcher exited {done.returncode}, not 2 (no such dump): {done.stderr[-800:]}")
            samples.append(parse_importtime(done.stderr, wall))
        samples.sort(key=lambda s: s["total_ms"])
        median = samples[len(samples) // 2]
        median.update(host=host, launcher=launcher, runs=runs, totals_ms=[s["total_ms"] for s in samples])
        return median

    # the database

    def requests_table(self) -> dict[str, Any]:
        """Rows and bytes of PyWPS's requests table and of the whole job database."""
        db, host = self.settings["db_name"], self.settings["db_host"]
        table = self.exec(host, ["runuser", "-u", "postgres", "--", "psql", "-d", db, "-Atc",
                                 "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                 "AND tablename LIKE '%requests' ORDER BY tablename LIMIT 1"]).stdout.strip()
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", table):
            raise BenchError(f"no PyWPS requests table in database {db} on {host}")
        row = self.exec(host, ["runuser", "-u", "postgres", "--", "psql", "-d", db, "-AtF", " ", "-c",
                               f"SELECT count(*), pg_total_relation_size('{table}'), "
                               f"pg_database_size(current_database()) FROM {table}"]).stdout.split()
        return {"table": table, "rows": int(row[0]), "table_bytes": int(row[1]), "database_bytes": int(row[2])}


def parse_importtime(stderr: str, wall_s: float) -> dict[str, Any]:
    """Total import time (sum of self times) and the top-level imports that cost most (cumulative)."""
    total = 0
    top: list[tuple[int, str]] = []
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if not match:
            continue
        total += int(match[1])
        if match[3] == " ":  # python prints one space before a top-level import, two more per level
            top.append((int(match[2]), match[4]))
    top.sort(reverse=True)
    return {"total_ms": round(total / 1000, 1), "wall_s": round(wall_s, 3),
            "top": [{"module": name, "cumulative_ms": round(us / 1000, 1)} for us, name in top[:5]]}


def async_latency(runner: Runner, target: Target, runs: int) -> dict[str, Any]:
    cmd = [runner.python, f"{runner.bench_dir}/async_latency.py", "--url", target.url, "--runs", str(runs),
           "--json", "-"]
    if target.connect:
        cmd += ["--connect", target.connect]
    return last_json(runner.exec(cmd, timeout=runs * 130).stdout)


def throughput(runner: Runner, target: Target, args: argparse.Namespace, jobs: int | None = None) -> dict[str, Any]:
    cmd = [runner.python, f"{runner.bench_dir}/throughput.py", "--url", target.url, "--jobs", str(jobs or args.jobs),
           "--clients", str(args.clients), "--window", str(args.window), "--timeout", str(args.burst_timeout),
           "--json", "-"]
    if target.connect:
        cmd += ["--connect", target.connect]
    return last_json(runner.exec(cmd, timeout=args.burst_timeout + 120, check=False).stdout)


# --- where the CPU goes -------------------------------------------------------------------------------
# Every demo container and the load generator share this machine's CPUs, so a
# burst's rate is bounded by the CPU each job costs, on every host it touches.
# Each container's CPU time is read from its cgroup on this machine (the
# containers see the host's cgroup tree, not their own): cgroup v1's
# cpuacct.usage (ns) or cgroup v2's cpu.stat usage_usec.


def cgroup_cpu_s(container_id: str, root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPU seconds a container has used, from its cgroup, or None where none of the known layouts has it."""
    for rel in (f"cpuacct/docker/{container_id}/cpuacct.usage", f"cpu,cpuacct/docker/{container_id}/cpuacct.usage"):
        try:
            return int((root / rel).read_text().strip()) / 1e9
        except (OSError, ValueError):
            pass
    for rel in (f"system.slice/docker-{container_id}.scope/cpu.stat", f"docker/{container_id}/cpu.stat"):
        try:
            stat = dict(line.split() for line in (root / rel).read_text().splitlines() if line.strip())
            return int(stat["usage_usec"]) / 1e6
        except (OSError, ValueError, KeyError):
            pass
    return None


def machine_busy_s() -> float:
    """CPU seconds this machine has spent on anything but idle and iowait (/proc/stat), over all CPUs."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(fields[:8]) - fields[3] - fields[4]) / ticks


class CpuMeter:
    """CPU seconds each demo container (label pwg-demo=true) and the whole machine use between start and stop."""

    def __init__(self) -> None:
        names = run(["docker", "ps", "--filter", "label=pwg-demo=true", "--format", "{{.Names}}"],
                    check=False).stdout.split()
        ids = run(["docker", "inspect", "-f", "{{.Id}}", *names], check=False).stdout.split() if names else []
        self.containers = dict(zip(names, ids)) if len(ids) == len(names) else {}
        self.before: dict[str, float] = {}
        self.started = 0.0
        self.busy = 0.0

    def start(self) -> None:
        self.before = {n: v for n, i in self.containers.items() if (v := cgroup_cpu_s(i)) is not None}
        self.busy, self.started = machine_busy_s(), time.monotonic()

    def stop(self, jobs: int) -> dict[str, Any]:
        """CPU seconds per job by host, the total and how busy the machine's CPUs were."""
        wall = time.monotonic() - self.started
        used = {n.removeprefix(DEMO_PREFIX): round(v - self.before[n], 2) for n, i in self.containers.items()
                if n in self.before and (v := cgroup_cpu_s(i)) is not None}
        cpus = os.cpu_count() or 1
        busy = machine_busy_s() - self.busy
        if not used:
            return {}
        total = sum(used.values())
        per_job = total / max(jobs, 1)
        return {"jobs": jobs, "wall_s": round(wall, 1), "cpus": cpus, "by_host_s": used,
                "total_s": round(total, 1), "per_job_s": round(per_job, 3),
                "machine_busy_pct": round(100 * busy / (wall * cpus), 1) if wall else 0.0,
                # the rate this machine could reach if every CPU did nothing but the burst
                "cpu_bound_jobs_per_min": round(60 * cpus / per_job, 0) if per_job else 0.0}


def counted_wrk(runner: Runner, target: Target, query: str, headers: Sequence[str], count: int, rps: float,
                args: argparse.Namespace, deadline: float) -> dict[str, int]:
    """About count requests with wrk, which only runs for a time: each thread stops at its share
    (bench/wrk_report.lua), each run lasts what the last rate says the rest needs, until the count or
    the deadline is reached."""
    answered = status_errors = 0
    while answered < count and time.monotonic() < deadline:
        rest = count - answered
        duration = int(min(300, max(2, rest / max(rps, 1.0) * 1.2 + 1), max(1, deadline - time.monotonic())))
        figures = wrk(runner, target, query, headers, duration, args.connections, args.threads, max_requests=rest)
        answered += figures["requests"]
        status_errors += figures["status_errors"] + figures["timeouts"] + figures["connect_errors"]
        rps = figures["requests"] / max(duration, 1)
    return {"requests": answered, "errors": status_errors}


def db_growth(runner: Runner, target: Target, demo: Demo, args: argparse.Namespace,
              discovery_figures: dict[str, Any] | None) -> dict[str, Any]:
    """The requests table before and after discovery requests that reach the app (Cache-Control:
    no-cache: a cached answer never reaches it), half GetCapabilities, half DescribeProcess, within
    --db-timeout seconds (the count actually answered is reported)."""
    before = demo.requests_table()
    deadline = time.monotonic() + args.db_timeout
    answered = errors = 0
    half = args.db_requests // 2
    for name, query, count in (
            ("GetCapabilities", "service=WPS&request=GetCapabilities", half),
            ("DescribeProcess", "service=WPS&version=1.0.0&request=DescribeProcess&identifier=sleep",
             args.db_requests - half)):
        rps = (discovery_figures or {}).get(f"{name}_uncached", {}).get("rps", 20.0)
        log(f"wrk: {count} {name} requests past the cache (about {count / max(rps, 1.0):.0f} s at {rps:.0f}/s)")
        done = counted_wrk(runner, target, query, ["Cache-Control: no-cache"], count, rps, args, deadline)
        answered += done["requests"]
        errors += done["errors"]
    after = demo.requests_table()
    return {"requests": answered, "asked": args.db_requests, "errors": errors, "before": before, "after": after}


# --- the table -------------------------------------------------------------------------------------


@dataclass
class Row:
    figure: str
    measured: str
    counterpart: str = "-"
    target: str = "-"
    verdict: str = "-"
    data: dict[str, Any] = field(default_factory=dict)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def rows_for(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    disc = results.get("discovery")
    if disc:
        for name in ("GetCapabilities", "DescribeProcess"):
            cached, uncached = disc[f"{name}_cached"], disc[f"{name}_uncached"]
            errors = cached["non_2xx"] + cached["connect_errors"] + cached["read_errors"] + cached["timeouts"]
            note = f" ({errors} errors)" if errors else ""
            rows.append(Row(f"{name} req/s (cache: {cached['cache_status']})", f"{cached['rps']:,.0f}{note}",
                            f"{uncached['rps']:,.0f} uncached ({uncached['cache_status']})",
                            f">= {TARGETS['cached_rps']:,.0f}",
                            verdict(cached["rps"] >= TARGETS["cached_rps"] and not errors)))
            rate = disc.get(f"{name}_rate")
            rows.append(Row(f"{name} p50 / p99 ms at that rate (wrk)",
                            f"{cached['p50_ms']:.1f} / {cached['p99_ms']:.1f}",
                            f"{uncached['p50_ms']:.1f} / {uncached['p99_ms']:.1f} uncached", "-", "-"))
            if rate:
                bad = rate["errors"] + rate["non_2xx"]
                short = rate["rps"] < 0.95 * rate["offered_rps"]
                rows.append(Row(f"{name} p50 / p99 ms at {rate['offered_rps']:,} req/s offered (hey)",
                                f"{rate['p50_ms']:.1f} / {rate['p99_ms']:.1f} ({rate['rps']:,.0f} req/s"
                                + (f", {bad} errors" if bad else "") + ")",
                                "-", f"p99 <= {TARGETS['cached_p99_ms']:.0f}",
                                verdict(rate["p99_ms"] <= TARGETS["cached_p99_ms"] and not bad and not short)))
    lat = results.get("async")
    if lat:
        orig = results.get("async_original_scheduler")
        rows.append(Row("async sleep delay=0 p50 / p90 s", f"{lat['p50_s']:.2f} / {lat['p90_s']:.2f}",
                        f"{orig['p50_s']:.2f} / {orig['p90_s']:.2f} original scheduler" if orig else "-",
                        f"p50 <= {TARGETS['async_p50_s']:.1f}", verdict(lat["p50_s"] <= TARGETS["async_p50_s"])))
    burst, orig_burst = results.get("throughput"), results.get("throughput_original_scheduler")
    if burst:
        rows.append(Row(f"throughput, {burst['jobs']} jobs / {burst['clients']} clients, jobs/min",
                        f"{burst['jobs_per_min']:.0f} (lost {burst['lost']}, failed {burst['failed']}, "
                        f"errors {burst['errors']}, refused {burst['refused']})",
                        f"{orig_burst['jobs_per_min']:.0f} original scheduler ({orig_burst['jobs']} jobs, "
                        f"lost {orig_burst['lost']})" if orig_burst else "-",
                        f">= {TARGETS['jobs_per_min']:.0f}, 0 lost",
                        verdict(burst["jobs_per_min"] >= TARGETS["jobs_per_min"]
                                and burst["succeeded"] == burst["jobs"])))
    cpu = results.get("throughput_cpu")
    if cpu:
        hosts = ", ".join(f"{h} {s / max(cpu['jobs'], 1):.2f}"
                          for h, s in sorted(cpu["by_host_s"].items(), key=lambda kv: -kv[1]))
        rows.append(Row("CPU s per job in that burst (by host)", f"{cpu['per_job_s']:.2f} ({hosts})",
                        f"{cpu['cpus']} CPUs {cpu['machine_busy_pct']:.0f} % busy: at most "
                        f"{cpu['cpu_bound_jobs_per_min']:.0f} jobs/min"))
    imp = results.get("launcher_importtime")
    if imp:
        top = ", ".join(f"{t['module']} {t['cumulative_ms']:.0f}" for t in imp["top"])
        rows.append(Row("launcher import time ms (top 5 ms)", f"{imp['total_ms']:.0f} ({top})",
                        f"process {imp['wall_s']:.2f} s"))
    db = results.get("db_growth")  # not "growth": that is the module of the growth figure
    if db:
        b, a = db["before"], db["after"]
        short = f" of {db['asked']:,} asked" if db["requests"] < db["asked"] else ""
        rows.append(Row(f"{b['table']} rows / kB, {db['requests']:,}{short} discovery requests (no-cache)",
                        f"{b['rows']} -> {a['rows']} / {b['table_bytes'] // 1024} -> {a['table_bytes'] // 1024}",
                        f"database {b['database_bytes'] // 1024} -> {a['database_bytes'] // 1024} kB",
                        "no growth", verdict(a["rows"] <= b["rows"] and a["table_bytes"] <= b["table_bytes"])))
    if results.get("growth"):  # growth figure (bench/growth.py)
        rows += [Row(name, measured, counterpart, target, "-" if ok is None else verdict(ok))
                 for name, measured, counterpart, target, ok in growth.rows(results["growth"])]
    if results.get("rows"):  # rows figure (bench/rows.py)
        rows += [Row(**row) for row in job_rows.table_rows(results["rows"])]
    return rows


def print_table(rows: list[Row]) -> None:
    headers = ("figure", "measured", "counterpart (same run)", "target", "")
    cells = [headers] + [(r.figure, r.measured, r.counterpart, r.target, r.verdict) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(headers))]
    for i, line in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    commit = run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=False).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu_model": model, "kernel": os.uname().release,
            "loadavg_start": list(os.getloadavg()), "commit": commit}


# --- main ------------------------------------------------------------------------------------------


def demo_settings() -> dict[str, Any]:
    """What the demo inventory says: the service URL, the exempt address, network, hosts."""
    expr = ("{{ {'url': pywps_server_url, 'exempt': nginx_limit_exempt | default([]), 'network': demo_network, "
            "'subnet': demo_subnet, 'db_name': cluster_db_name, 'db_host': groups['db'] | first, "
            "'qmaster': groups['sge_qmaster'] | first, 'exec_host': groups['sge_exec'] | first, "
            "'web': groups['web'] | first, 'service_user': cluster_service_user} }}")
    done = run([shutil.which("ansible") or str(ROOT / ".venv/bin/ansible"), "-i", str(ROOT / "inventories/demo"),
                "web", "-m", "ansible.builtin.debug", "-a", f"msg={expr}", "-o"], timeout=120)
    line = next((x for x in done.stdout.splitlines() if "=>" in x), "")
    settings = json.loads(line.split("=>", 1)[1])["msg"]
    settings["config_file"] = "/etc/pywps/pywps.cfg"
    return settings


def loadgen_address(settings: dict[str, Any]) -> str:
    """The one exempt address on the demo subnet: the load generator's."""
    subnet = ipaddress.ip_network(settings["subnet"])
    hosts = [a for a in settings["exempt"] if "/" not in a and ipaddress.ip_address(a) in subnet]
    if len(hosts) != 1:
        raise BenchError(f"inventories/demo must list exactly one address of {subnet} in nginx_limit_exempt "
                         f"(the load generator's), found {hosts or 'none'}")
    return hosts[0]


def container_address(name: str, network: str) -> str:
    fmt = "{{(index .NetworkSettings.Networks \"" + network + "\").IPAddress}}"
    done = run(["docker", "inspect", "-f", fmt, name], check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise BenchError(f"container {name} is not running on {network}: bring the demo up with ./pwg demo")
    return done.stdout.strip()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="./pwg bench", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="", help="a WPS to measure instead of the demo (from this machine)")
    parser.add_argument("--allow-remote", action="store_true", help="accept a --url that is not loopback/private")
    parser.add_argument("--json", default=str(ROOT / ".cache" / "bench.json"), help="where to write the figures")
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run (discovery)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--rate", type=int, default=1000, help="requests/s hey offers for the cached discovery "
                        "latency (the target's rate)")
    parser.add_argument("--rate-workers", type=int, default=8, help="hey workers sharing --rate")
    parser.add_argument("--runs", type=int, default=10, help="async Execute runs, each scheduler setting")
    parser.add_argument("--jobs", type=int, default=200, help="jobs of the throughput burst")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients of the burst")
    parser.add_argument("--window", type=int, default=2, help="jobs each burst client keeps in flight (0: no bound)")
    parser.add_argument("--original-jobs", type=int, default=40,
                        help="jobs of the burst with the original demo's scheduler (its counterpart; fewer: "
                             "that scheduler starts at most a slot's worth of jobs each 15 s)")
    parser.add_argument("--burst-timeout", type=int, default=900, help="seconds the whole burst may take")
    parser.add_argument("--db-requests", type=int, default=10000, help="discovery requests of the database check")
    parser.add_argument("--db-timeout", type=int, default=1200, help="seconds the database check may take")
    parser.add_argument("--skip", action="append", default=[], help="leave out a figure: discovery, async, "
                        "original-scheduler, throughput, importtime, db, growth, rows (repeatable)")
    args = parser.parse_args(argv)
    for name in ("duration", "connections", "threads", "rate", "rate_workers", "runs", "jobs", "original_jobs",
                 "clients", "db_requests", "burst_timeout", "db_timeout"):
        if getattr(args, name) < 1 or getattr(args, name) > 100_000:
            parser.error(f"--{name.replace('_', '-')} must be between 1 and 100000")
    if args.duration > 300:
        parser.error("--duration is at most 300 s")
    if args.rate_workers > args.rate:
        parser.error("--rate-workers must not exceed --rate (each worker sends at least one request a second)")
    known = {"discovery", "async", "original-scheduler", "throughput", "importtime", "db", "growth", "rows"}
    if set(args.skip) - known:
        parser.error(f"--skip takes {', '.join(sorted(known))}")
    return args


def _interrupted(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGHUP, _interrupted)
    started = time.monotonic()
    results: dict[str, Any] = {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                               "machine": machine(), "targets": TARGETS}
    runner: Runner
    demo: Demo | None = None
    loadgen: LoadGenerator | None = None
    try:
        if args.url:
            parts = urlsplit(args.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise BenchError(f"--url must be an http(s) URL of a WPS endpoint, not {args.url!r}")
            local, addresses = is_local_host(parts.hostname)
            if not local and not args.allow_remote:
                raise BenchError(f"{parts.hostname} ({', '.join(addresses)}) is neither loopback nor private: "
                                 "this benchmark loads the service hard; give --allow-remote if it is yours to load")
            if not shutil.which("wrk"):
                raise BenchError("wrk is not installed (Debian: apt-get install wrk)")
            runner, target = Runner(), Target(args.url)
            results["mode"] = "url"
        else:
            settings = demo_settings()
            address = loadgen_address(settings)
            web = container_address(DEMO_PREFIX + settings["web"], settings["network"])
            base = os.environ.get("PWG_BASE_IMAGE") or run([str(ROOT / "testbed/image.sh")],
                                                           timeout=1800).stdout.strip()
            demo = Demo(settings)
            demo.restore_saved_scheduler()
            loadgen = LoadGenerator(settings["network"], address, base)
            loadgen.start()
            runner, target = loadgen, Target(settings["url"], connect=f"http://{web}:80")  # no /etc/services
            results["mode"] = "demo"
            results["loadgen"] = {"address": address, "web": web}
        results["url"] = target.url

        if "discovery" not in args.skip:
            results["discovery"] = discovery(runner, target, args)
        if demo and "db" not in args.skip:
            results["db_growth"] = db_growth(runner, target, demo, args, results.get("discovery"))
        if "async" not in args.skip:
            log(f"async latency: {args.runs} runs of sleep delay=0")
            results["async"] = async_latency(runner, target, args.runs)
        if demo and "original-scheduler" not in args.skip and "async" not in args.skip:
            saved = demo.scheduler()
            original = saved
            for key, value in ORIGINAL_SCHEDULER.items():
                original = re.sub(rf"(?m)^({key}\s+).*$", lambda m, v=value: m[1] + v, original)
            SCHED_SAVED.parent.mkdir(parents=True, exist_ok=True)
            SCHED_SAVED.write_text(saved)
            try:
                log("async latency with the original demo's scheduler: "
                    + ", ".join(f"{k} {v}" for k, v in ORIGINAL_SCHEDULER.items()))
                demo.set_scheduler(original)
                results["async_original_scheduler"] = async_latency(runner, target, args.runs)
                if "throughput" not in args.skip:
                    log(f"throughput with the original demo's scheduler: {args.original_jobs} jobs")
                    results["throughput_original_scheduler"] = throughput(runner, target, args, args.original_jobs)
            finally:
                demo.set_scheduler(saved)
                SCHED_SAVED.unlink()
                log("scheduler configuration restored")
        if "throughput" not in args.skip:
            log(f"throughput: {args.jobs} jobs from {args.clients} clients, "
                f"{args.window or 'unbounded'} in flight each")
            meter = CpuMeter() if demo else None
            if meter:
                meter.start()
            results["throughput"] = throughput(runner, target, args)
            if meter:
                results["throughput_cpu"] = meter.stop(results["throughput"].get("succeeded", 0))
        if demo and "importtime" not in args.skip:
            log("launcher import time on " + demo.settings["exec_host"])
            results["launcher_importtime"] = demo.launcher_importtime()
        # growth figure (bench/growth.py): the demo scaled out to 8 exec hosts and back, each step timed
        if "growth" not in args.skip and not demo:
            log("growth: skipped, it scales the demo's own containers (not measured with --url)")
        elif "growth" not in args.skip and demo:
            try:
                results["growth"] = growth.measure(runner, target.url, target.connect, demo.settings,
                                                   args.burst_timeout)
            except growth.GrowthError as e:
                raise BenchError(f"growth: {e}") from e
        # end growth figure
        # rows figure (bench/rows.py): the job list and the clean-up pass in scratch tables of the demo's database
        if "rows" not in args.skip and not demo:
            log("rows: skipped, it fills scratch tables in the demo's database (not measured with --url)")
            results["rows"] = {"skipped": "not measured with --url (it needs the demo's database)"}
        elif "rows" not in args.skip and demo:
            log("rows: the job list and the clean-up pass at "
                + " and ".join(f"{n:,}" for n in job_rows.SIZES) + " job rows")
            results["rows"] = job_rows.measure(demo, log, BenchError, root=ROOT, container_prefix=DEMO_PREFIX)
        # end rows figure
    except BenchError as e:
        print(f"./pwg bench: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("./pwg bench: interrupted", file=sys.stderr)
        return 130
    finally:
        if loadgen:
            loadgen.stop()
            log(f"load generator {LOADGEN} removed")

    results["machine"]["loadavg_end"] = list(os.getloadavg())
    results["seconds"] = round(time.monotonic() - started)
    rows = rows_for(results)
    results["table"] = [r.__dict__ for r in rows]
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    print(f"\n./pwg bench: {results['mode']} {results['url']}, {m['cpus']} CPUs ({m['cpu_model']}), "
          f"load average {m['loadavg_start'][0]:.1f} at the start, {m['loadavg_end'][0]:.1f} at the end, "
          f"commit {m['commit']}, {results['seconds']} s")
    print_table(rows)
    print(f"figures: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
