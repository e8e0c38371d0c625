"""The pywps role's pywps-prune-venvs: earlier builds' virtualenvs go once no
process runs from them; the current one never, whether it is named by its
directory or by the stable link; a current one that is not there removes
nothing."""

import os
import subprocess
import time

import pytest
from conftest import ROOT

SCRIPT = ROOT / "roles" / "pywps" / "files" / "usr" / "local" / "sbin" / "pywps-prune-venvs"


@pytest.fixture
def layout(tmp_path):
    venvs = tmp_path / "venvs"
    for build in ("aaaa", "bbbb", "cccc"):
        (venvs / build / "bin").mkdir(parents=True)
    (tmp_path / "venv").symlink_to(venvs / "cccc")
    return tmp_path, venvs


def prune(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(SCRIPT), *args], capture_output=True, text=True, check=False, timeout=30)


def builds(venvs) -> list[str]:
    return sorted(os.listdir(venvs))


def test_the_link_keeps_its_target_and_idle_builds_go(layout):
    root, venvs = layout
    run = prune(str(venvs), str(root / "venv"))
    assert run.returncode == 0, run.stderr
    assert builds(venvs) == ["cccc"]
    assert sorted(run.stdout.split("\n")[:-1]) == [f"removed {venvs}/aaaa", f"removed {venvs}/bbbb"]
    assert prune(str(venvs), str(root / "venv")).stdout == ""  # nothing more: no change reported


def test_the_directory_names_the_current_build_as_well(layout):
    _, venvs = layout
    assert prune(str(venvs), str(venvs / "aaaa")).returncode == 0
    assert builds(venvs) == ["aaaa"]


def test_a_build_a_process_runs_from_stays(layout):
    root, venvs = layout
    # A job of build bbbb: its command line names the build's interpreter, as pip's scripts do.
    job = subprocess.Popen(["bash", "-c", f"exec -a {venvs}/bbbb/bin/python3 sleep 30"])
    try:
        time.sleep(0.3)
        run = prune(str(venvs), str(root / "venv"))
        assert run.returncode == 0, run.stderr
        assert builds(venvs) == ["bbbb", "cccc"]
        assert f"kept {venvs}/bbbb (in use)" in run.stderr
    finally:
        job.kill()
        job.wait()
    prune(str(venvs), str(root / "venv"))
    assert builds(venvs) == ["cccc"]


def test_check_only_says_what_would_go(layout):
    root, venvs = layout
    run = prune(str(venvs), str(root / "venv"), "--check")
    assert run.returncode == 0
    assert "would remove" in run.stdout
    assert builds(venvs) == ["aaaa", "bbbb", "cccc"]


@pytest.mark.parametrize("current", ["venv-missing", "elsewhere"])
def test_a_current_build_that_is_not_there_removes_nothing(layout, current):
    root, venvs = layout
    (root / "elsewhere").mkdir()
    run = prune(str(venvs), str(root / current))
    assert run.returncode == 1
    assert "nothing removed" in run.stderr
    assert builds(venvs) == ["aaaa", "bbbb", "cccc"]
