"""The PyWPS private interfaces the app relies on (:mod:`pywps_gridengine.compat`), pinned.

A PyWPS release that renames or changes one of them fails here, not in production.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pathlib
import re

import pytest
from pywps import dblog
from pywps.response.status import WPS_STATUS

from pywps_gridengine import compat
from pywps_gridengine.jobs import RequestStatus


def _resolve(dotted: str):
    module, qualname = dotted.split(":")
    target = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


@pytest.mark.parametrize(("member", "signature"), sorted(compat.PINNED_SIGNATURES.items()))
def test_pywps_signature_is_the_one_the_app_was_written_for(member, signature):
    assert str(inspect.signature(_resolve(member))) == signature


def test_every_private_pywps_member_the_app_touches_is_pinned():
    """Each ``._name`` of a PyWPS object called in compat.py is in PINNED_SIGNATURES."""
    source = pathlib.Path(compat.__file__).read_text()
    called = set(re.findall(r"\b(?:process|response|super\(\))\.(_[a-z][a-z_]*)\(", source))
    pinned = {member.rsplit(".", 1)[1] for member in compat.PINNED_SIGNATURES}
    assert called and called <= pinned, called - pinned


def test_request_status_names_match_pywps():
    assert {status.name: int(status) for status in RequestStatus} == WPS_STATUS._asdict()


def test_requests_table_has_the_columns_the_store_uses():
    columns = set(dblog.ProcessInstance.__table__.columns.keys())
    assert {"uuid", "pid", "operation", "time_start", "time_end", "message", "percent_done", "status"} <= columns
    assert "uuid" in dblog.RequestInstance.__table__.columns


def test_section_items_skip_the_environment_defaults(make_env, monkeypatch):
    from pywps import configuration

    monkeypatch.setenv("QUEUE", "from-the-environment")
    make_env(extra="[gridengine]\nh_vmem = 1G\n")
    assert compat.section_items(configuration.CONFIG, "gridengine") == {"h_vmem": "1G"}
    assert compat.section_items(configuration.CONFIG, "nope") == {}


def test_pywps_cfg_is_set_in_one_place():
    """Only the configuration loader writes PYWPS_CFG into the environment."""
    src = pathlib.Path(compat.__file__).parent
    writers = [path.name for path in sorted(src.rglob("*.py"))
               if re.search(r"os\.environ\[\"PYWPS_CFG\"\]\s*=", path.read_text())]
    assert writers == ["config.py"]


# -- the reason of a job that ran out of memory (memory_limit_reason) ------------------------------

_OUT_OF_MEMORY = """\
import resource, sys
from pywps_gridengine.compat import memory_limit_reason, peak_virtual_memory
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # what sge_execd does for h_vmem
try:
    block = bytearray(2 * limit)
except MemoryError:
    print(peak_virtual_memory())
    print(memory_limit_reason())
else:
    print("allocated past the limit")
"""


def test_out_of_memory_reason_names_the_limit_and_the_peak():
    """A real MemoryError under a real address space limit, in a child process of its own."""
    import subprocess
    import sys

    limit = 1536 * 2**20
    proc = subprocess.run([sys.executable, "-c", _OUT_OF_MEMORY, str(limit)], capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    peak_line, reason = proc.stdout.splitlines()
    peak = int(peak_line)
    assert 0 < peak <= limit  # the failed allocation was never granted
    assert reason == (f"The job ran out of memory: it reached its memory limit h_vmem=1536M "
                      f"(peak virtual memory {peak / 2**20:.0f}M).")


def test_out_of_memory_reason_without_proc_names_the_limit_only(tmp_path):
    """Where /proc/self/status cannot be read (not mounted, not Linux), the limit alone, no error."""
    import resource

    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    for unreadable in (tmp_path / "missing", tmp_path):  # absent; a directory (open fails with OSError)
        assert compat.peak_virtual_memory(str(unreadable)) is None
        reason = compat.memory_limit_reason(str(unreadable))
        assert "peak" not in reason
        assert reason.startswith("The job ran out of memory")
    status = tmp_path / "status"
    status.write_text("Name:\tpython3\nVmPeak:\t  327680 kB\nVmSize:\t  300000 kB\n")
    assert compat.peak_virtual_memory(str(status)) == 327680 * 1024
    if limit == resource.RLIM_INFINITY:
        assert compat.memory_limit_reason(str(status)) == "The job ran out of memory (peak virtual memory 320M)."
    status.write_text("Name:\tpython3\nVmSize:\t  300000 kB\n")  # a kernel without VmPeak
    assert compat.peak_virtual_memory(str(status)) is None
