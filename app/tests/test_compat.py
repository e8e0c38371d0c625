"""The PyWPS private interfaces the app relies on (:mod:`pywps_gridengine.compat`), pinned.

A PyWPS release that renames or changes one of them fails here, not in production.
"""

from __future__ import annotations

import importlib
import inspect
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
