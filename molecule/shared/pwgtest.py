"""What the molecule scenarios' testinfra tests share.

The verifier puts this directory on PYTHONPATH (.config/molecule/config.yml),
so a test module does `from pwgtest import remote, poll, ...`.
"""

import json
import os
import re
import shlex
import subprocess
import time
import urllib.parse
from collections.abc import Callable

import testinfra
import testinfra.utils.ansible_runner
from owslib.wps import WPSExecution

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
SERVICE_USER = "wps"
SHARED = "/srv/wps"
NS = {"wps": "http://www.opengis.net/wps/1.0.0", "ows": "http://www.opengis.net/ows/1.1"}


def hosts(pattern: str) -> list[str]:
    """The scenario's inventory hosts matching an Ansible host pattern."""
    return testinfra.utils.ansible_runner.AnsibleRunner.get_runner(INVENTORY).get_hosts(pattern)


def spec(name: str) -> str:
    """A testinfra host spec for an inventory host (for `testinfra_hosts`). A host that is no
    molecule platform (the test bed's VM, in the scenario's linked hosts.yml) is read from the
    whole inventory directory; the platforms from molecule's file, as molecule writes them."""
    platforms = testinfra.utils.ansible_runner.AnsibleRunner.get_runner(INVENTORY).get_hosts("all")
    inventory = INVENTORY if name in platforms else os.path.dirname(INVENTORY)
    return f"ansible://{name}?ansible_inventory={inventory}"


def remote(name: str):
    """A testinfra host for any inventory host, beside the one under test."""
    return testinfra.get_host(spec(name))


def own_address(name: str) -> str:
    """The IPv4 address the host has on its container network."""
    return remote(name).check_output("ip -4 -o route get 1.1.1.1").split(" src ")[1].split()[0]


def prometheus(path: str, **params: str) -> dict:
    """GET Prometheus's HTTP API (api/v1/PATH) on the scenario's monitoring host: the answer's data."""
    url = f"http://localhost:9090/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    answer = json.loads(remote(hosts("monitoring")[0]).check_output(f"curl -sS --max-time 10 {shlex.quote(url)}"))
    assert answer["status"] == "success", answer
    return answer["data"]


def firing(alertname: str) -> list[dict]:
    """The labels of each firing alert named ALERTNAME."""
    return [alert["labels"] for alert in prometheus("alerts")["alerts"]
            if alert["labels"].get("alertname") == alertname and alert["state"] == "firing"]


def as_user(host, command: str, user: str = SERVICE_USER):
    """Run a command in USER's login shell (profile.d sets the Grid Engine environment)."""
    return host.run(f"su - {user} -c {shlex.quote(command)}")


def write_as(host, path: str, content: str, user: str = SERVICE_USER) -> None:
    """Write CONTENT to PATH on HOST as USER."""
    script = f"printf %s {shlex.quote(content)} > {shlex.quote(path)}"
    host.check_output(f"runuser -u {user} -- sh -c {shlex.quote(script)}")


def accounting(qmaster, job_id: int | str, timeout: float = 30) -> dict[str, str]:
    """A job's accounting record, `qacct -j` on the qmaster, which keeps the file.

    The record is written when the job's end reaches the qmaster: wait for it.
    """
    deadline = time.monotonic() + timeout
    while (result := as_user(qmaster, f"qacct -j {job_id}")).rc != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert result.rc == 0, f"qacct has no record of job {job_id}: {result.stderr}"
    pairs = (line.split(None, 1) for line in result.stdout.splitlines())
    return {pair[0]: pair[1].strip() for pair in pairs if len(pair) == 2}


def sge_job_id(status_document: str | bytes | None) -> str | None:
    """The Grid Engine job a status document names (`[Grid Engine job N]`), if any."""
    if isinstance(status_document, bytes):
        status_document = status_document.decode()
    found = re.search(r"Grid Engine job (\d+)", status_document or "")
    return found.group(1) if found else None


def poll(
    fetch: Callable[[], bytes],
    until: Callable[[WPSExecution], object] = WPSExecution.isComplete,
    timeout: float = 120,
    interval: float = 0.25,
) -> tuple[WPSExecution, list[tuple[str, int]]]:
    """Read a WPS status document with OWSLib until UNTIL holds (by default: a final state).

    FETCH returns the status document's bytes (from wherever the test can reach
    it). Returns the execution as last read (its `response` is the document)
    and the (status, percentCompleted) steps seen, in order.
    """
    execution = WPSExecution()
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution.checkStatus(response=fetch(), sleepSecs=0)
        step = (execution.status, execution.percentCompleted)
        if not seen or seen[-1] != step:
            seen.append(step)
        if until(execution):
            return execution, seen
        time.sleep(interval)
    raise AssertionError(f"no such status within {timeout} s: {seen}")


def run_playbook(name: str, variables: dict, *options: str) -> tuple[subprocess.CompletedProcess, dict]:
    """playbooks/NAME.yml on the scenario's inventory with extra VARIABLES (and ansible-playbook
    OPTIONS): the run and its JSON report (the ansible.posix.json callback)."""
    playbook = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "playbooks", f"{name}.yml")
    run = subprocess.run(
        ["ansible-playbook", "-i", os.path.dirname(INVENTORY), playbook, *options, "-e", json.dumps(variables)],
        capture_output=True, text=True, check=False,
        env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
    )
    # The JSON report, without what other callbacks (molecule enables a timer) print after it.
    report, _ = json.JSONDecoder().raw_decode(run.stdout.lstrip())
    return run, report


def failed_tasks(report: dict, host_name: str) -> list[dict]:
    """The results of the tasks that failed on HOST_NAME, from run_playbook's report."""
    return [
        task["hosts"][host_name]
        for play in report["plays"]
        for task in play["tasks"]
        if task["hosts"].get(host_name, {}).get("failed")
    ]


def refusal(run: subprocess.CompletedProcess, report: dict, host_name: str) -> str:
    """The message (JSON) of the one check a run_playbook run must stop at on HOST_NAME,
    having changed nothing there: what every bad-input test reads."""
    assert run.returncode != 0, run.stdout[-3000:] + run.stderr
    stats = report["stats"][host_name]
    assert stats["failures"] == 1, (host_name, stats)
    assert stats["changed"] == 0, (host_name, stats)
    failures = failed_tasks(report, host_name)
    assert len(failures) == 1, failures
    return json.dumps(failures[0])
