"""Repository-level tests: inventories, the cluster contract, role helpers."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"


def ansible(tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run an ansible command from the project root (so ansible.cfg applies)."""
    return subprocess.run(
        [str(BIN / tool), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=check,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"},
    )


def inventory_vars(inventory: Path) -> dict:
    """Every host's variables as ansible-inventory sees them."""
    out = ansible("ansible-inventory", "-i", str(inventory), "--list", "--export")
    return json.loads(out.stdout)


@pytest.fixture
def make_inventory(tmp_path):
    """Write an inventory directory linked to the contract like the real ones."""

    def make(hosts_yml: str, site_vars: str = "") -> Path:
        inv = tmp_path / "inventory"
        (inv / "group_vars" / "all").mkdir(parents=True)
        (inv / "hosts.yml").write_text(hosts_yml)
        (inv / "group_vars" / "all" / "00-contract").symlink_to(ROOT / "group_vars" / "all")
        if site_vars:
            (inv / "group_vars" / "all" / "site.yml").write_text(site_vars)
        return inv

    return make
