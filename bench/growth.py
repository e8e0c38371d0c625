"""./pwg bench's growth figure: what converging costs as the demo grows from 2 to 8 exec hosts and back.

The demo is converged as it is (no change expected), scaled out to 8 exec
hosts (6 more containers, then a converge of every host: /etc/hosts, the
firewall rules and the qmaster's host lists all name the new hosts), converged
again (no change expected), given a burst of trivial jobs that Grid Engine's
accounting must show on every one of the 8 hosts, and scaled back in the way
an operator retires hosts (playbooks/sge-drain.yml, then out of the inventory
and a converge). A final converge with no change proves the demo ended as it
started.

The 6 added hosts live in a temporary inventory file given after
inventories/demo (.cache/bench-growth-inventory.yml): testbed/demo.yml gives
addresses in the order of groups['all'], so the demo's hosts keep theirs and
the new ones take the next. The file also marks a scale-out in progress: a run
killed outright (SIGKILL) leaves it, and the next run scales back in first.

Only the pure parts (inventory text, PLAY RECAP and qacct parsing) are unit
tested (tests/test_bench_growth.py); the rest drives the live demo.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml
from pywps_gridengine.reconciler import qacct_records  # the app, installed in .venv

ROOT = Path(__file__).resolve().parent.parent
DEMO_INVENTORY = ROOT / "inventories" / "demo"
EXTRA_INVENTORY = ROOT / ".cache" / "bench-growth-inventory.yml"
LOGS = ROOT / ".cache" / "logs"
DEMO_PREFIX = "pwg-demo-"
ADDED_HOSTS = [f"exec{n}" for n in range(3, 9)]
# The burst: 64 one-second jobs from 14 clients with 2 in flight each, 28 at
# once: every slot of 8 two-core exec hosts (16) is kept busy, and the app's
# cap of 30 active jobs per client address (the load generator's) is never
# met, so no client sits out a Retry-After.
BURST_JOBS = 64
BURST_CLIENTS = 14
BURST_WINDOW = 2
BURST_INPUTS = "delay=1"
# Grid Engine writes a job's accounting record when the execd reports its
# end, which can follow the status document the client saw.
ACCOUNTING_WAIT_S = 90
DRAIN_TIMEOUT_S = 600
CONVERGE_TIMEOUT_S = 3600

RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class GrowthError(Exception):
    """A step of the growth figure that failed, with what to look at."""


class LoadRunner(Protocol):
    """What the figure needs of bench.py's Runner: where bench/ is and how to run a tool there."""

    python: str
    bench_dir: str

    def exec(self, cmd: Sequence[str], env: dict[str, str] | None = None,
             timeout: float | None = None, check: bool = True) -> subprocess.CompletedProcess[str]: ...


def log(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


# --- pure parts ------------------------------------------------------------------------------------


def inventory_text(hosts: Sequence[str], group: str = "sge_exec", prefix: str = DEMO_PREFIX,
                   secrets_dir: Path = ROOT / ".secrets" / DEMO_INVENTORY.name) -> str:
    """The extra inventory source: the hosts in the group, each with how Ansible reaches its container.

    inventories/demo's zz-containers.yml (a constructed source) sets these
    only for the hosts read before it, so a later source sets them itself.
    The contract derives cluster_secrets_dir (the database CA, the generated
    passwords) from the host's inventory_dir, which for these hosts is this
    file's directory: they are given the demo's. The connection is named
    docker, as in zz-containers.yml, so that Mitogen (ansible.cfg) takes it over.
    """
    doc = {"all": {"children": {group: {"hosts": {
        name: {"ansible_connection": "docker", "ansible_host": prefix + name,
               "ansible_user": "root", "cluster_secrets_dir": str(secrets_dir)} for name in hosts}}}}}
    return ("---\n# Written by ./pwg bench (bench/growth.py) while the demo runs with more exec hosts;\n"
            "# removed when it has scaled back in. Given after inventories/demo.\n"
            + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """Each host's counts (ok, changed, unreachable, failed, ...) from ansible-playbook's last PLAY RECAP."""
    text = ANSI.sub("", output)
    start = text.rfind("PLAY RECAP")
    if start < 0:
        raise GrowthError(f"no PLAY RECAP in the output: {text[-800:]}")
    hosts: dict[str, dict[str, int]] = {}
    for line in text[start:].splitlines()[1:]:
        match = RECAP_LINE.match(line.strip())
        if match:
            hosts[match["host"]] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match["counts"])}
        elif hosts and line.strip():
            break  # the timer callback's line after the recap
    if not hosts:
        raise GrowthError(f"a PLAY RECAP without hosts: {text[start:start + 800]}")
    return hosts


def changed_tasks(output: str) -> list[str]:
    """The tasks that reported a change, in order, each once: why a converge that should change nothing did."""
    tasks: list[str] = []
    task = ""
    for line in ANSI.sub("", output).splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line[line.index("[") + 1:line.rindex("]")] if "]" in line else line
        elif line.startswith("changed:") and task and task not in tasks:
            tasks.append(task)
    return tasks


def recap_totals(hosts: dict[str, dict[str, int]]) -> dict[str, int]:
    """The counts summed over the hosts."""
    totals: Counter[str] = Counter()
    for counts in hosts.values():
        totals.update(counts)
    return dict(totals)


def parse_qacct_jobs(output: str) -> list[dict[str, str]]:
    """The job records of qacct -j (the reconciler's own parser), those that name a job and its host."""
    return [job for job in qacct_records(output) if "jobnumber" in job and "hostname" in job]


def jobs_per_host(jobs: Sequence[dict[str, str]], hosts: Sequence[str]) -> dict[str, int]:
    """How many of the jobs each host ran (short names; every host listed, also with 0)."""
    counts = Counter(job["hostname"].split(".", 1)[0] for job in jobs)
    return {**{host: counts.get(host, 0) for host in hosts}, **{h: n for h, n in counts.items() if h not in hosts}}


def host_order(name: str) -> tuple[str, int]:
    """exec2 before exec10."""
    match = re.fullmatch(r"(.*?)(\d+)", name)
    return (match[1], int(match[2])) if match else (name, -1)


# --- the demo --------------------------------------------------------------------------------------


def command(cmd: Sequence[str], *, timeout: float, log_name: str = "") -> subprocess.CompletedProcess[str]:
    """A command from the project root (so ansible.cfg applies), its output kept in .cache/logs/ when named."""
    try:
        done = subprocess.run(list(cmd), cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise GrowthError(f"{' '.join(cmd[:8])} ... did not end within {timeout:.0f} s") from e
    if log_name:
        LOGS.mkdir(parents=True, exist_ok=True)
        (LOGS / f"bench-growth-{log_name}.log").write_text(done.stdout + done.stderr)
    return done


def ansible_tool(name: str) -> str:
    return shutil.which(name) or str(ROOT / ".venv" / "bin" / name)


def inventories(extra: bool) -> list[str]:
    args = ["-i", str(DEMO_INVENTORY)]
    return args + ["-i", str(EXTRA_INVENTORY)] if extra else args


def playbook(name: str, args: Sequence[str], log_name: str) -> tuple[float, dict[str, dict[str, int]], list[str]]:
    """Run a playbook; its seconds, PLAY RECAP and changed tasks. A failed run raises GrowthError naming its log."""
    start = time.monotonic()
    done = command([ansible_tool("ansible-playbook"), *args, name], timeout=CONVERGE_TIMEOUT_S, log_name=log_name)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        failed = [line for line in ANSI.sub("", done.stdout).splitlines() if line.startswith(("fatal:", "failed:"))]
        raise GrowthError(f"ansible-playbook {name} ({log_name}) exited {done.returncode} after {seconds:.0f} s: "
                          f"{' | '.join(failed[:3])[:800] or done.stderr[-800:]} "
                          f"(log: {LOGS / f'bench-growth-{log_name}.log'})")
    return seconds, parse_recap(done.stdout), changed_tasks(done.stdout)


def converge(extra: bool, label: str) -> dict[str, Any]:
    """site.yml on the demo (and the added hosts when extra): seconds, changed in all, per host."""
    log(f"growth: converge site.yml, {label}")
    seconds, hosts, tasks = playbook("site.yml", inventories(extra), label)
    totals = recap_totals(hosts)
    changed = {host: counts.get("changed", 0) for host, counts in sorted(hosts.items(), key=lambda i: host_order(i[0]))}
    log(f"growth: {label}: {seconds:.0f} s, changed={totals.get('changed', 0)} on {len(hosts)} hosts")
    # hosts: the inventory's, without localhost (a play of site.yml runs on the control host)
    return {"seconds": round(seconds, 1), "hosts": len(set(hosts) - {"localhost"}), "changed": totals.get("changed", 0),
            "ok": totals.get("ok", 0), "changed_per_host": {h: n for h, n in changed.items() if n},
            "changed_tasks": tasks[:40]}


def docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = command(["docker", *args], timeout=timeout)
    if check and done.returncode != 0:
        raise GrowthError(f"docker {' '.join(args[:6])} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return done


def existing_containers(hosts: Sequence[str]) -> list[str]:
    names = docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    return [h for h in hosts if DEMO_PREFIX + h in names]


def qmaster_shell(qmaster: str, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A shell command on the qmaster with Grid Engine's environment (a login shell)."""
    return docker("exec", DEMO_PREFIX + qmaster, "bash", "-lc", script, check=check, timeout=120)


def network_addresses(network: str) -> dict[str, str]:
    """Each container on the network and its IPv4 address (docker's names, without the prefix cut)."""
    fmt = '{{range .Containers}}{{.Name}} {{.IPv4Address}}{{"\\n"}}{{end}}'
    lines = docker("network", "inspect", network, "-f", fmt).stdout.splitlines()
    return {name: address.split("/", 1)[0] for name, address in (line.split() for line in lines if line.strip())}


def demo_addresses(on_network: dict[str, str], demo_hosts: Sequence[str], hosts: Sequence[str], subnet: str,
                   first: int = 10) -> dict[str, str]:
    """testbed/demo.yml's demo_addresses for a run limited to the added hosts: the demo's containers at the
    addresses they have, the added hosts at the lowest free ones from .first up.

    demo.yml numbers groups['all'] in order, and the added hosts, being in
    group sge_exec, come before db1 and nfs1 there: left alone it would give
    exec3 the database host's address. Ansible's extra vars (-e) outrank the
    play's own demo_addresses.
    """
    network = ipaddress.ip_network(subnet)
    used = {ipaddress.ip_address(a) for a in on_network.values()}  # the load generator's too
    out = {host: on_network[DEMO_PREFIX + host] for host in demo_hosts if DEMO_PREFIX + host in on_network}
    missing = [host for host in demo_hosts if host not in out]
    if missing:
        raise GrowthError(f"the demo's {', '.join(missing)} not on the network: bring the demo up with ./pwg demo")
    candidates = (a for a in network.hosts() if int(a) - int(network.network_address) >= first and a not in used)
    for host in hosts:
        address = next(candidates, None)
        if address is None:
            raise GrowthError(f"no free address left on {subnet} for {host}")
        out[host] = str(address)
    return out


def create_hosts(settings: dict[str, Any], demo_hosts: Sequence[str]) -> float:
    """The added hosts' containers, by testbed/demo.yml limited to them (the demo's own containers are left
    alone: docker's /etc/hosts of theirs would differ, and docker_container would recreate them)."""
    image = docker("inspect", "-f", "{{.Config.Image}}", DEMO_PREFIX + "exec1").stdout.strip()
    addresses = demo_addresses(network_addresses(settings["network"]), demo_hosts, ADDED_HOSTS, settings["subnet"])
    log("growth: containers " + ", ".join(f"{h} {addresses[h]}" for h in ADDED_HOSTS) + f" ({image})")
    start = time.monotonic()
    done = command(["env", f"PWG_BASE_IMAGE={image}", ansible_tool("ansible-playbook"), *inventories(True),
                    "--limit", ",".join(ADDED_HOSTS), "-e", json.dumps({"demo_addresses": addresses}),
                    "testbed/demo.yml"], timeout=900, log_name="containers")
    if done.returncode != 0:
        raise GrowthError(f"testbed/demo.yml for {', '.join(ADDED_HOSTS)} exited {done.returncode} "
                          f"(log: {LOGS / 'bench-growth-containers.log'})")
    return round(time.monotonic() - start, 1)


def scale_in() -> dict[str, Any]:
    """Retire the added hosts as an operator does, then converge the demo back and prove it unchanged.

    Drain with playbooks/sge-drain.yml (their queue instances disabled, their
    jobs waited for, their execd stopped and the hosts unregistered), remove
    their containers (docker rm: testbed/demo.yml with demo_state=absent also
    removes the network, run once whatever the limit), converge the demo
    without them (/etc/hosts, firewall rules), then converge once more: 0
    changed means the demo is as it started.
    """
    out: dict[str, Any] = {}
    start = time.monotonic()
    log(f"growth: drain {', '.join(ADDED_HOSTS)} (playbooks/sge-drain.yml)")
    seconds, _, _ = playbook("playbooks/sge-drain.yml",
                          [*inventories(False), "-e", f"sge_drain_hosts={','.join(ADDED_HOSTS)}",
                           "-e", f"sge_drain_timeout={DRAIN_TIMEOUT_S}"], "drain")
    out["drain_s"] = round(seconds, 1)
    step = time.monotonic()
    present = existing_containers(ADDED_HOSTS)
    if present:
        docker("rm", "-f", *(DEMO_PREFIX + h for h in present), timeout=600)
    out["containers_s"] = round(time.monotonic() - step, 1)
    out["converge"] = converge(False, "scale-in")
    out["seconds"] = round(time.monotonic() - start, 1)
    EXTRA_INVENTORY.unlink(missing_ok=True)
    out["noop"] = converge(False, "final-no-change-2")
    return out


def burst(runner: LoadRunner, target_url: str, connect: str, qmaster: str, hosts: Sequence[str],
          timeout: int) -> dict[str, Any]:
    """Trivial async jobs through the WPS (bench/throughput.py), then who ran them, from Grid Engine's accounting.

    The jobs are those qacct counts as started since the qmaster's clock at
    the burst's start (qacct -b), waited for until they are as many as the
    burst's successes.
    """
    stamp = qmaster_shell(qmaster, "date +%Y%m%d%H%M.%S").stdout.strip()
    log(f"growth: burst of {BURST_JOBS} x sleep {BURST_INPUTS}, {BURST_CLIENTS} clients, {BURST_WINDOW} in flight each")
    cmd = [runner.python, f"{runner.bench_dir}/throughput.py", "--url", target_url, "--jobs", str(BURST_JOBS),
           "--clients", str(BURST_CLIENTS), "--window", str(BURST_WINDOW), "--inputs", BURST_INPUTS,
           "--timeout", str(timeout), "--json", "-"]
    if connect:
        cmd += ["--connect", connect]
    done = runner.exec(cmd, timeout=timeout + 120, check=False)
    line = next((x for x in reversed(done.stdout.strip().splitlines()) if x.startswith("{")), "")
    if not line:
        raise GrowthError(f"throughput.py printed no figures: {done.stdout[-400:]} {done.stderr[-400:]}")
    figures: dict[str, Any] = yaml.safe_load(line)  # JSON is YAML
    deadline = time.monotonic() + ACCOUNTING_WAIT_S
    while True:
        acct = qmaster_shell(qmaster, f"qacct -b {stamp} -j", check=False)
        jobs = parse_qacct_jobs(acct.stdout)
        if len(jobs) >= figures["succeeded"] or time.monotonic() > deadline:
            break
        time.sleep(5)
    per_host = jobs_per_host(jobs, hosts)
    figures.update(since=stamp, accounted=len(jobs), failed_in_accounting=sum(
        1 for j in jobs if j.get("failed", "0").split()[0] != "0" or j.get("exit_status", "0").split()[0] != "0"),
        per_host=per_host, every_host=all(per_host.get(h, 0) > 0 for h in hosts))
    log("growth: jobs per exec host: " + ", ".join(f"{h} {n}" for h, n in per_host.items()))
    return figures


def measure(runner: LoadRunner, target_url: str, connect: str, settings: dict[str, Any],
            burst_timeout: int) -> dict[str, Any]:
    """The whole figure. The demo is scaled back in whatever happens after it was scaled out
    (an error, Ctrl-C, SIGTERM raised as KeyboardInterrupt by bench.py)."""
    qmaster = settings["qmaster"]
    out: dict[str, Any] = {"added_hosts": ADDED_HOSTS}
    leftover = existing_containers(ADDED_HOSTS)
    if EXTRA_INVENTORY.exists() or leftover:
        log(f"growth: a previous run left the demo scaled out ({EXTRA_INVENTORY.name}, containers "
            f"{', '.join(leftover) or 'none'}): scaling back in first")
        if not EXTRA_INVENTORY.exists():
            EXTRA_INVENTORY.parent.mkdir(parents=True, exist_ok=True)
            EXTRA_INVENTORY.write_text(inventory_text(ADDED_HOSTS))
        out["leftover_scale_in"] = scale_in()
    listed = command([ansible_tool("ansible-inventory"), *inventories(False), "--list"], timeout=120)
    if listed.returncode != 0:
        raise GrowthError(f"ansible-inventory -i inventories/demo --list: {listed.stderr[-500:]}")
    inventory = json.loads(listed.stdout)
    demo_hosts = sorted(inventory["_meta"]["hostvars"], key=host_order)
    demo_exec = sorted(inventory.get("sge_exec", {}).get("hosts", []), key=host_order)
    if not demo_exec or set(demo_hosts) & set(ADDED_HOSTS):
        raise GrowthError(f"the demo's exec hosts must be known and none of {', '.join(ADDED_HOSTS)}: {demo_exec}")
    out["exec_hosts_before"] = demo_exec
    out["noop_before"] = converge(False, "no-change-2")
    EXTRA_INVENTORY.parent.mkdir(parents=True, exist_ok=True)
    EXTRA_INVENTORY.write_text(inventory_text(ADDED_HOSTS))
    scaled_out_ok = False
    try:
        out["containers_s"] = create_hosts(settings, demo_hosts)
        out["scale_out"] = converge(True, "scale-out")
        out["noop_after"] = converge(True, "no-change-8")
        all_exec = demo_exec + ADDED_HOSTS
        out["burst"] = burst(runner, target_url, connect, qmaster, all_exec, burst_timeout)
        scaled_out_ok = True
    finally:
        if not scaled_out_ok:
            log("growth: scaling back in after the failure above")
        try:
            out["scale_in"] = scale_in()
        finally:  # the steps' figures survive whatever fails after them (bench.py writes its JSON last)
            LOGS.mkdir(parents=True, exist_ok=True)
            (LOGS / "bench-growth-results.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def rows(growth: dict[str, Any]) -> list[tuple[str, str, str, str, bool | None]]:
    """The figure's table rows: figure, measured, counterpart, target, ok (None: no target)."""
    before, after, out, back = growth["noop_before"], growth["noop_after"], growth["scale_out"], growth["scale_in"]
    b = growth["burst"]
    n_before, n_after = len(growth["exec_hosts_before"]), len(growth["exec_hosts_before"]) + len(growth["added_hosts"])
    per_host = ", ".join(f"{h} {n}" for h, n in b["per_host"].items())

    def why(run: dict[str, Any]) -> str:  # what a converge expected to change nothing changed
        tasks = run.get("changed_tasks", [])
        return f"; changed: {', '.join(tasks[:3])}{' ...' if len(tasks) > 3 else ''}" if tasks else ""

    return [
        (f"converge, no change, {n_before} exec hosts s", f"{before['seconds']:.0f} (changed {before['changed']})",
         f"{before['hosts']} hosts{why(before)}", "changed 0", before["changed"] == 0),
        (f"scale out {n_before} -> {n_after} exec hosts (first converge) s",
         f"{out['seconds']:.0f} (changed {out['changed']})",
         f"{out['hosts']} hosts; containers {growth['containers_s']:.0f} s", "-", None),
        (f"converge, no change, {n_after} exec hosts s", f"{after['seconds']:.0f} (changed {after['changed']})",
         f"{before['seconds']:.0f} s with {n_before}{why(after)}", "changed 0", after["changed"] == 0),
        (f"jobs per exec host in a burst ({b['jobs']} x sleep {b['inputs']})",
         f"{per_host} (qacct: {b['accounted']} jobs)",
         f"{b['jobs_per_min']:.0f} jobs/min; succeeded {b['succeeded']}, failed {b['failed']}, lost {b['lost']}",
         "every host >= 1", bool(b["every_host"]) and b["succeeded"] == b["jobs"]),
        (f"scale back in {n_after} -> {n_before} s",
         f"{back['seconds']:.0f} (drain {back['drain_s']:.0f}, containers {back['containers_s']:.0f}, "
         f"converge {back['converge']['seconds']:.0f})",
         f"then no change {back['noop']['seconds']:.0f} s (changed {back['noop']['changed']}){why(back['noop'])}",
         "changed 0",
         back["noop"]["changed"] == 0),
    ]
