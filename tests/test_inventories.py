"""The inventories honour the contract: group_vars/all reaches every one of
them, an inventory can override it, and the preflight play rejects a broken
layout with a message naming what is wrong."""

import json
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, ansible

INVENTORIES = sorted(p for p in (ROOT / "inventories").iterdir() if p.is_dir())
SCENARIO_GROUP_VARS = sorted(ROOT.glob("molecule/*/inventory/group_vars/all/00-contract"))

LAYOUT = """
all:
  children:
    web: {hosts: {w1: {ansible_connection: local}}}
    sge_qmaster: {hosts: {q1: {ansible_connection: local}}}
    sge_exec: {hosts: {e1: {ansible_connection: local}}}
    db: {hosts: {d1: {ansible_connection: local}}}
    nfs_server: {hosts: {n1: {ansible_connection: local}}}
    nfs_clients: {children: {web: {}, sge_exec: {}, sge_qmaster: {}}}
    sge_submit: {children: {web: {}}}
    sge_cluster: {children: {sge_qmaster: {}, sge_exec: {}, sge_submit: {}}}
"""
NFS_CLIENTS = "nfs_clients: {children: {web: {}, sge_exec: {}, sge_qmaster: {}}}"


def contract_keys() -> set[str]:
    keys: set[str] = set()
    for f in sorted((ROOT / "group_vars" / "all").glob("*.yml")):
        keys |= set(yaml.safe_load(f.read_text()) or {})
    return keys


def host_vars(inventory: Path, host: str) -> dict:
    out = ansible("ansible-inventory", "-i", str(inventory), "--host", host)
    return json.loads(out.stdout)


@pytest.mark.parametrize("inventory", INVENTORIES, ids=lambda p: p.name)
def test_contract_reaches_every_host_of_every_inventory(inventory):
    listing = json.loads(ansible("ansible-inventory", "-i", str(inventory), "--list").stdout)
    hosts = listing["_meta"]["hostvars"]
    assert hosts, f"{inventory.name} has no hosts"
    missing = {h: sorted(contract_keys() - set(v)) for h, v in hosts.items()}
    assert not any(missing.values()), f"contract variables missing: {missing}"


@pytest.mark.parametrize("inventory", INVENTORIES, ids=lambda p: p.name)
def test_inventory_passes_preflight_and_syntax_check(inventory):
    ansible("ansible-playbook", "-i", str(inventory), "--syntax-check", "site.yml")
    run = ansible("ansible-playbook", "-i", str(inventory), "playbooks/preflight.yml", check=False)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("link", SCENARIO_GROUP_VARS, ids=lambda p: p.parts[-5])
def test_molecule_scenarios_link_the_contract(link):
    assert link.resolve() == (ROOT / "group_vars" / "all").resolve()


def test_inventory_overrides_the_contract(make_inventory):
    inv = make_inventory(LAYOUT, "cluster_service_uid: 3100\ncluster_shared_root: /data/wps\n")
    v = host_vars(inv, "e1")
    assert v["cluster_service_uid"] == 3100
    assert v["cluster_shared_root"] == "/data/wps"
    # Untouched contract values still arrive.
    assert v["cluster_service_user"] == "wps"


@pytest.mark.parametrize(
    ("broken", "named"),
    [
        ("    sge_submit: {children: {web: {}}}\n", "sge_submit"),
        ("    nfs_clients: {children: {web: {}, sge_exec: {}, sge_qmaster: {}}}\n", "nfs_clients"),
    ],
)
def test_preflight_names_the_missing_group(make_inventory, broken, named):
    inv = make_inventory(LAYOUT.replace(broken, ""))
    run = ansible("ansible-playbook", "-i", str(inv), "playbooks/preflight.yml", check=False)
    assert run.returncode != 0
    assert f"no hosts in group '{named}'" in run.stdout + run.stderr


def test_preflight_rejects_a_derived_group_without_its_members(make_inventory):
    inv = make_inventory(LAYOUT.replace(NFS_CLIENTS, "nfs_clients: {children: {web: {}}}"))
    run = ansible("ansible-playbook", "-i", str(inv), "playbooks/preflight.yml", check=False)
    assert run.returncode != 0
    assert "nfs_clients must contain web and sge_exec" in run.stdout + run.stderr


QMASTER_OUTSIDE_NFS = LAYOUT.replace(NFS_CLIENTS, "nfs_clients: {children: {web: {}, sge_exec: {}}}")


def test_preflight_wants_the_qmaster_on_the_shared_tree_for_accounting(make_inventory):
    inv = make_inventory(QMASTER_OUTSIDE_NFS)
    run = ansible("ansible-playbook", "-i", str(inv), "playbooks/preflight.yml", check=False)
    assert run.returncode != 0
    assert "nfs_clients must contain sge_qmaster" in run.stdout + run.stderr


def test_preflight_lets_the_qmaster_keep_accounting_to_itself(make_inventory):
    inv = make_inventory(QMASTER_OUTSIDE_NFS, 'cluster_sge_accounting_file: ""\n')
    run = ansible("ansible-playbook", "-i", str(inv), "playbooks/preflight.yml", check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_preflight_wants_monitoring_hosts_when_monitoring_is_on(make_inventory):
    inv = make_inventory(LAYOUT, "cluster_monitoring: true\n")
    run = ansible("ansible-playbook", "-i", str(inv), "playbooks/preflight.yml", check=False)
    assert run.returncode != 0
    assert "cluster_monitoring is on but the inventory has no hosts in group 'monitoring'" in run.stdout + run.stderr


def test_preflight_takes_monitoring_with_its_host(make_inventory):
    layout = LAYOUT + "    monitoring: {hosts: {m1: {ansible_connection: local}}}\n"
    inv = make_inventory(layout, "cluster_monitoring: true\n")
    run = ansible("ansible-playbook", "-i", str(inv), "playbooks/preflight.yml", check=False)
    assert run.returncode == 0, run.stdout + run.stderr
