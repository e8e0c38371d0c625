"""./pwg bench's growth figure (bench/growth.py): the parts that need no demo: the extra inventory
source as Ansible reads it, the changed counts of a PLAY RECAP, the jobs per host of qacct -j, and
the addresses the added hosts' containers get."""

import json
import re
import sys

import pytest
from conftest import ROOT, ansible

sys.path.insert(0, str(ROOT / "bench"))
import growth  # noqa: E402  (bench/ is not a package: its scripts run as files)

# ansible-playbook's recap as it prints it; db1's line coloured as with ANSIBLE_FORCE_COLOR.
DB1_COLOURED = ("\x1b[0;33mdb1\x1b[0m                        : \x1b[0;32mok=61  \x1b[0m "
                "\x1b[0;33mchanged=2   \x1b[0m unreachable=0    failed=0    skipped=20   rescued=0    ignored=0")
RECAP = f"""\
TASK [firewall : Load the table] ***********************************************
ok: [exec2]

TASK [common : Write the cluster hosts into /etc/hosts] ************************
changed: [exec1]
changed: [web1]

RUNNING HANDLER [sge_qmaster : Restart the qmaster] ****************************
changed: [qmaster]

TASK [pywps : Ship the wheelhouse] *********************************************
ok: [web1]

PLAY RECAP *********************************************************************
{DB1_COLOURED}
exec1                      : ok=120  changed=0    unreachable=0    failed=0    skipped=31   rescued=0    ignored=0
exec10                     : ok=118  changed=17   unreachable=0    failed=0    skipped=33   rescued=0    ignored=1
web1                       : ok=150  changed=1    unreachable=0    failed=0    skipped=40   rescued=0    ignored=0

Playbook run took 0 days, 0 hours, 4 minutes, 12 seconds
"""


def test_recap_counts_every_host_and_sums_changed():
    hosts = growth.parse_recap(RECAP)
    assert list(hosts) == ["db1", "exec1", "exec10", "web1"]
    assert hosts["db1"] == {"ok": 61, "changed": 2, "unreachable": 0, "failed": 0, "skipped": 20,
                            "rescued": 0, "ignored": 0}
    assert hosts["exec10"]["ignored"] == 1
    assert growth.recap_totals(hosts)["changed"] == 20
    assert growth.recap_totals(hosts)["ok"] == 449


def test_changed_tasks_are_named_once_each():
    assert growth.changed_tasks(RECAP) == ["common : Write the cluster hosts into /etc/hosts",
                                           "sge_qmaster : Restart the qmaster"]


def test_recap_is_the_last_one_of_the_output():
    """A playbook that imports another prints one recap at the end; an earlier recap-like block
    (a previous run's log prepended) must not count."""
    earlier = RECAP.replace("changed=17", "changed=99")
    hosts = growth.parse_recap(earlier + "\n" + RECAP.replace("exec10", "exec9"))
    assert "exec10" not in hosts and hosts["exec9"]["changed"] == 17


@pytest.mark.parametrize("output", ["ERROR! the playbook: site.yml could not be found\n",
                                    "PLAY RECAP ****\n\nnothing here\n"])
def test_output_without_a_recap_is_an_error(output):
    with pytest.raises(growth.GrowthError):
        growth.parse_recap(output)


QACCT = """\
==============================================================
qname        all.q
hostname     exec1
group        wps
owner        wps
jobname      pywps-1a2b
jobnumber    101
failed       0
exit_status  0
==============================================================
qname        all.q
hostname     exec3.pwg-demo
group        wps
owner        wps
jobname      pywps-3c4d
jobnumber    102
failed       100 : assumedly after job
exit_status  137
==============================================================
qname        all.q
hostname     exec1
jobnumber    103
failed       0
exit_status  0
==============================================================
qname        all.q
hostname     exec9
jobnumber    104
failed       0
exit_status  0
Total System Usage
"""


def test_qacct_jobs_are_counted_per_short_host_name_with_idle_hosts_at_zero():
    jobs = growth.parse_qacct_jobs(QACCT)
    assert [j["jobnumber"] for j in jobs] == ["101", "102", "103", "104"]
    assert jobs[1]["failed"] == "100 : assumedly after job"
    per_host = growth.jobs_per_host(jobs, ["exec1", "exec2", "exec3"])
    # the hosts asked for in their order, with 0 for an idle one; a host not asked for still shows
    assert list(per_host.items()) == [("exec1", 2), ("exec2", 0), ("exec3", 1), ("exec9", 1)]


def test_qacct_without_jobs_gives_none():
    summary = ("Total System Usage\n    WALLCLOCK         UTIME\n"
               "================================================\n          0         0.000\n")
    assert growth.parse_qacct_jobs(summary) == []
    assert growth.jobs_per_host([], ["exec1"]) == {"exec1": 0}


def test_extra_inventory_adds_the_hosts_to_sge_exec_with_their_containers(tmp_path):
    """As Ansible reads it after inventories/demo: the added hosts join sge_exec (and so nfs_clients
    and sge_cluster), each reached in its own container; the demo's hosts are unchanged."""
    extra = tmp_path / "extra.yml"
    extra.write_text(growth.inventory_text(["exec3", "exec4"]))
    out = ansible("ansible-inventory", "-i", str(ROOT / "inventories" / "demo"), "-i", str(extra), "--list")
    inventory = json.loads(out.stdout)
    assert inventory["sge_exec"]["hosts"] == ["exec1", "exec2", "exec3", "exec4"]
    hostvars = inventory["_meta"]["hostvars"]
    for name in ("exec3", "exec4"):
        assert hostvars[name]["ansible_connection"] == "docker"
        assert hostvars[name]["ansible_host"] == f"pwg-demo-{name}"
        assert hostvars[name]["ansible_user"] == "root"
    for name in ("exec1", "web1"):  # set by the demo's constructed source: --list marks them unsafe
        value = hostvars[name]["ansible_host"]
        assert (value.get("__ansible_unsafe") if isinstance(value, dict) else value) == f"pwg-demo-{name}"
    # the database CA and generated secrets: the demo's, not a directory derived from the extra file's place
    shown = ansible("ansible", "-i", str(ROOT / "inventories" / "demo"), "-i", str(extra), "exec1,exec3",
                    "-m", "ansible.builtin.debug", "-a", "var=cluster_db_tls_dir").stdout
    dirs = set(re.findall(r'"cluster_db_tls_dir": "([^"]+)"', shown))
    assert dirs == {str(ROOT / ".secrets" / "demo" / "db-tls")}, shown
    graph = ansible("ansible-inventory", "-i", str(ROOT / "inventories" / "demo"), "-i", str(extra),
                    "--graph", "nfs_clients").stdout
    assert "exec4" in graph


def test_added_hosts_take_free_addresses_and_the_demo_keeps_its_own():
    on_network = {"pwg-demo-web1": "10.213.0.10", "pwg-demo-exec1": "10.213.0.12", "pwg-demo-db1": "10.213.0.11",
                  "pwg-demo-bench": "10.213.0.13"}
    addresses = growth.demo_addresses(on_network, ["web1", "exec1", "db1"], ["exec3", "exec4"], "10.213.0.0/24")
    assert addresses == {"web1": "10.213.0.10", "exec1": "10.213.0.12", "db1": "10.213.0.11",
                         "exec3": "10.213.0.14", "exec4": "10.213.0.15"}


def test_a_demo_host_missing_from_the_network_is_an_error():
    with pytest.raises(growth.GrowthError, match="db1"):
        growth.demo_addresses({"pwg-demo-web1": "10.213.0.10"}, ["web1", "db1"], ["exec3"], "10.213.0.0/24")


def test_a_full_subnet_is_an_error():
    on_network = {f"pwg-demo-h{n}": f"10.213.0.{n}" for n in range(10, 255)}
    with pytest.raises(growth.GrowthError, match="no free address"):
        growth.demo_addresses(on_network, [], ["exec3"], "10.213.0.0/24")


def test_rows_name_the_figures_and_judge_them():
    noop = {"seconds": 61.2, "hosts": 6, "changed": 0}
    result = {
        "added_hosts": ["exec3", "exec4"], "exec_hosts_before": ["exec1", "exec2"], "containers_s": 30.0,
        "noop_before": noop, "scale_out": {"seconds": 400.0, "hosts": 8, "changed": 300},
        "noop_after": {"seconds": 80.0, "hosts": 8, "changed": 1},
        "burst": {"jobs": 8, "inputs": "delay=1", "succeeded": 8, "failed": 0, "lost": 0, "jobs_per_min": 90.0,
                  "accounted": 8, "per_host": {"exec1": 2, "exec2": 2, "exec3": 4, "exec4": 0}, "every_host": False},
        "scale_in": {"seconds": 200.0, "drain_s": 20.0, "containers_s": 5.0, "converge": {"seconds": 175.0},
                     "noop": {"seconds": 60.0, "changed": 0}},
    }
    rows = {name: (measured, ok) for name, measured, _, _, ok in growth.rows(result)}
    assert rows["converge, no change, 2 exec hosts s"] == ("61 (changed 0)", True)
    assert rows["scale out 2 -> 4 exec hosts (first converge) s"] == ("400 (changed 300)", None)
    assert rows["converge, no change, 4 exec hosts s"] == ("80 (changed 1)", False)
    burst_measured, burst_ok = rows["jobs per exec host in a burst (8 x sleep delay=1)"]
    assert burst_measured.startswith("exec1 2, exec2 2, exec3 4, exec4 0") and burst_ok is False
    assert rows["scale back in 4 -> 2 s"] == ("200 (drain 20, containers 5, converge 175)", True)
