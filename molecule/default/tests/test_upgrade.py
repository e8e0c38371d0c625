"""An upgrade of the app under running jobs (roles/pywps, versioned virtualenvs).

Long jobs run; a changed build of the app is deployed with the playbook an
operator runs (site.yml --tags pywps); the running jobs finish with the build
they started with, a new job runs the new one, nothing fails, and the earlier
build's virtualenv goes once no process runs from it.
"""

import os
import pathlib
import shlex
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET

import requests
from pwgtest import INVENTORY, hosts, remote

BASE = "http://localhost:15000"  # kept equal to demo_published_port in ../host_vars/web1.yml
WEB = hosts("web")
EXEC_HOSTS = hosts("sge_exec")
VENV = "/opt/pywps/venv"
VENVS = "/opt/pywps/venvs"
PROJECT = pathlib.Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])


def submit(delay: float) -> str:
    reply = requests.get(f"{BASE}/wps", params={
        "service": "WPS", "version": "1.0.0", "request": "Execute", "identifier": "sleep",
        "datainputs": f"delay={delay}", "storeExecuteResponse": "true", "status": "true"}, timeout=60)
    assert reply.status_code == 200, reply.text
    return ET.fromstring(reply.content).get("statusLocation")


def state(location: str) -> str:
    text = requests.get(location, timeout=10).text
    for name in ("ProcessAccepted", "ProcessStarted", "ProcessSucceeded", "ProcessFailed"):
        if name in text:
            return name
    return "?"


def wait(what: str, check, timeout: float):
    deadline = time.monotonic() + timeout
    while not (got := check()):
        assert time.monotonic() < deadline, f"{what} not within {timeout} s"
        time.sleep(1)
    return got


def current_build(name: str) -> str:
    return remote(name).check_output(f"readlink -f {VENV}")


def launcher_builds() -> dict[str, set[str]]:
    """For each exec host, the virtualenvs its running job launchers run from (their command lines)."""
    found = {}
    for name in EXEC_HOSTS:
        out = remote(name).run("ps -eo args= | grep -F pywps-gridengine-launcher | grep -v grep").stdout
        found[name] = {word.rsplit("/bin/", 1)[0] for line in out.splitlines() for word in line.split()
                       if word.startswith(VENVS + "/")}
    return found


def test_running_jobs_keep_their_build_through_an_upgrade(tmp_path):
    before = {name: current_build(name) for name in WEB + EXEC_HOSTS}
    assert all(path.startswith(VENVS + "/") for path in before.values()), before
    old = before[EXEC_HOSTS[0]]
    assert len(set(before.values())) == 1, before  # one build everywhere

    # Long jobs, one per exec host at least (two slots each): running when the deploy starts.
    long_jobs = [submit(8) for _ in range(2 * len(EXEC_HOSTS))]  # 40 s each
    wait("the long jobs starting", lambda: all(state(loc) == "ProcessStarted" for loc in long_jobs), 120)
    running_from = launcher_builds()
    assert set().union(*running_from.values()) == {old}, running_from

    # A changed app: the same source with one line more, so its build (and virtualenv) differ.
    source = tmp_path / "app"
    shutil.copytree(PROJECT / "app", source,
                    ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", ".pytest_cache"))
    with (source / "src" / "pywps_gridengine" / "__init__.py").open("a") as handle:
        handle.write(f"# upgrade test {time.time()}\n")
    deploy = subprocess.run(
        ["ansible-playbook", "-i", os.path.dirname(INVENTORY), str(PROJECT / "site.yml"), "--tags", "pywps",
         "-e", f"pywps_app_source={source}"],
        capture_output=True, text=True, timeout=900, check=False)
    assert deploy.returncode == 0, deploy.stdout[-4000:] + deploy.stderr[-2000:]

    after = {name: current_build(name) for name in WEB + EXEC_HOSTS}
    new = after[EXEC_HOSTS[0]]
    assert new != old and set(after.values()) == {new}, (before, after)
    # The jobs still running run from the old build, whose directory is still there.
    still = [loc for loc in long_jobs if state(loc) == "ProcessStarted"]
    if still:
        assert set().union(*launcher_builds().values()) <= {old}
        for name in EXEC_HOSTS:
            assert remote(name).file(old).is_directory

    # A new job runs the new build, beside the old ones.
    fresh = submit(4)
    wait("the new job starting", lambda: state(fresh) in ("ProcessStarted", "ProcessSucceeded"), 120)
    if state(fresh) == "ProcessStarted":
        assert new in set().union(*launcher_builds().values())

    outcomes = wait("every job ending", lambda: (lambda s: s if all(x in ("ProcessSucceeded", "ProcessFailed")
                                                                    for x in s) else None)(
        [state(loc) for loc in long_jobs + [fresh]]), 240)
    assert outcomes == ["ProcessSucceeded"] * len(outcomes), outcomes

    # Nothing runs from the old build now: the hourly pruner (started by hand here) removes it.
    for name in WEB + EXEC_HOSTS:
        host = remote(name)
        host.check_output("systemctl start pywps-prune-venvs.service")
        assert not host.file(old).exists, name
        assert host.file(new).is_directory
        assert host.file(VENV).is_symlink
        listing = host.check_output(f"ls -1 {shlex.quote(VENVS)}").split()
        assert listing == [os.path.basename(new)], (name, listing)
