"""The host firewall (roles/firewall) on the nfs scenario's hosts.

Every host runs it, as on a real inventory: NFSv4 on the server is open to its
clients (nfs-web, nfs-exec) and closed to nfs-outsider; bad inputs stop the
role before it changes anything, naming the variable at fault.
"""

import ipaddress
import json
import shlex
import subprocess
import time

import pytest
from pwgtest import own_address, refusal, remote, run_playbook, spec

SERVER = "nfs-server"
HOSTS = ["nfs-server", "nfs-web", "nfs-exec", "nfs-outsider"]
TABLE = "inet pywps_gridengine"
RULES = "/etc/nftables.d/pywps-gridengine.nft"
NFS_PORT = 2049
# firewall_ssh_allow of the scenario (inventory/group_vars/all/firewall.yml): the docker host.
SSH_ALLOWED = "10.213.3.1"
# nfs-vm's cluster address (inventory/host_vars/nfs-vm.yml): the same docker host.
VM_ADDRESS = "10.213.3.1"
# ansible_docker_extra_env is an option of the docker connection plugin itself: the runs
# that pass SSH_CLIENT through it use the plugin, not Mitogen's connection (ansible.cfg).
PLAIN_DOCKER = {"ansible_connection": "community.docker.docker"}
testinfra_hosts = [spec(SERVER)]


def connects(client: str, address: str, port: int) -> bool:
    """Whether CLIENT opens a TCP connection to ADDRESS:PORT within 3 s (a dropped SYN times out)."""
    script = f"exec 3<>/dev/tcp/{address}/{port}"
    return remote(client).run(f"timeout 3 bash -c {shlex.quote(script)}").rc == 0


def table(name: str) -> str:
    return remote(name).check_output(f"nft list table {TABLE}")


@pytest.mark.parametrize("name", HOSTS)
def test_ruleset_is_loaded_and_kept_for_boot(name):
    host = remote(name)
    listing = table(name)
    assert "hook input priority filter; policy drop;" in listing
    assert 'iif "lo" accept' in listing
    assert "ct state established,related accept" in listing
    assert host.service("pywps-gridengine-firewall").is_enabled
    # Never through nftables.service, whose configuration flushes every table.
    assert RULES not in host.file("/etc/nftables.conf").content_string
    assert host.run(f"nft -c -f {RULES}").rc == 0


def admitted(name: str) -> dict[tuple[str, int], list[tuple]]:
    """The TCP and UDP ports the role's table on NAME accepts, each with the source
    ranges it accepts them from (nft's JSON: an address, a prefix, a range or a set of them)."""
    listing = json.loads(remote(name).check_output(f"nft -j list table {TABLE}"))

    def ranges(value) -> list[tuple]:
        if isinstance(value, str):
            return [(ipaddress.ip_address(value), ipaddress.ip_address(value))]
        if "set" in value:
            return [r for element in value["set"] for r in ranges(element)]
        if "prefix" in value:
            network = ipaddress.ip_network(f"{value['prefix']['addr']}/{value['prefix']['len']}")
            return [(network[0], network[-1])]
        low, high = value["range"]
        return [(ipaddress.ip_address(low), ipaddress.ip_address(high))]

    def values(value) -> list[int]:
        return [v for element in value["set"] for v in values(element)] if isinstance(value, dict) else [value]

    found: dict[tuple[str, int], list[tuple]] = {}
    for rule in (item["rule"] for item in listing["nftables"] if "rule" in item):
        matches = [e["match"] for e in rule["expr"] if "match" in e]
        saddr = [m["right"] for m in matches if m["left"].get("payload", {}).get("field") == "saddr"]
        dport = [m for m in matches if m["left"].get("payload", {}).get("field") == "dport"]
        if saddr and dport and {"accept": None} in rule["expr"]:
            for port in values(dport[0]["right"]):
                found.setdefault((dport[0]["left"]["payload"]["protocol"], port), []).extend(ranges(saddr[0]))
    return found


def admits(name: str, port: int, address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(low.version == ip.version and low <= ip <= high for low, high in admitted(name).get(("tcp", port), []))


def test_server_admits_nfs_from_its_clients_only():
    for client in ("nfs-web", "nfs-exec"):
        assert admits(SERVER, NFS_PORT, own_address(client)), client
    assert not admits(SERVER, NFS_PORT, own_address("nfs-outsider"))
    # nfs-vm's traffic leaves the docker host from its address (QEMU's user-mode network):
    # that address is a client, and the only one outside the containers.
    assert admits(SERVER, NFS_PORT, VM_ADDRESS)
    assert set(admitted(SERVER)) == {("tcp", 22), ("tcp", NFS_PORT), ("udp", 546)}


@pytest.mark.parametrize("name", ["nfs-web", "nfs-exec", "nfs-outsider"])
def test_hosts_admit_ssh_from_the_operators_and_only_their_own_services(name):
    ports = admitted(name)
    ssh = (ipaddress.ip_address(SSH_ALLOWED),) * 2
    anyone = [(ipaddress.ip_address("0.0.0.0"), ipaddress.ip_address("255.255.255.255")),
              (ipaddress.ip_address("::"), ipaddress.ip_address("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))]
    # nfs-web is in group web: nginx's ports are open to anyone there.
    web = {("tcp", 80): anyone, ("tcp", 443): anyone} if name == "nfs-web" else {}
    assert {port: sources for port, sources in ports.items() if port != ("udp", 546)} == {("tcp", 22): [ssh], **web}


@pytest.mark.parametrize(("client", "allowed"), [("nfs-web", True), ("nfs-exec", True), ("nfs-outsider", False)])
def test_nfs_port_from(client, allowed):
    assert connects(client, own_address(SERVER), NFS_PORT) is allowed


def test_outsider_is_dropped_not_refused_by_a_closed_port():
    """What the outsider meets on the NFS port is the firewall: another port it also
    cannot reach, while the server's own loopback still reaches NFS."""
    assert not connects("nfs-outsider", own_address(SERVER), 22)
    assert connects(SERVER, "127.0.0.1", NFS_PORT)


def test_export_still_refuses_the_outsider_without_the_firewall(host):
    """Two layers: with the role's table gone, the export itself still refuses the
    outsider (test_nfs.test_outsider_is_refused meets the firewall first)."""
    host.check_output(f"nft delete table {TABLE}")
    try:
        assert connects("nfs-outsider", own_address(SERVER), NFS_PORT)
        listing = remote("nfs-outsider").run(f"timeout 30 nfs-ls nfs://{SERVER}/srv/wps/?version=4")
        assert listing.rc not in (0, 124), listing.stdout + listing.stderr
    finally:
        host.check_output(f"nft -f {RULES}")
    assert not connects("nfs-outsider", own_address(SERVER), NFS_PORT)


def test_a_table_flushed_by_hand_is_loaded_again(host):
    host.check_output(f"nft delete table {TABLE}")
    run, report = run_playbook("firewall", {})
    assert run.returncode == 0, run.stdout + run.stderr
    # The look at the loaded table reports the missing table, the handler loads it.
    assert report["stats"][SERVER]["changed"] == 2
    for name in HOSTS:
        if name != SERVER:
            assert report["stats"][name]["changed"] == 0, name
    assert "policy drop" in table(SERVER)
    assert not connects("nfs-outsider", own_address(SERVER), NFS_PORT)


def test_check_mode_on_the_converged_hosts_changes_nothing():
    run, report = run_playbook("firewall", {}, "--check")
    assert run.returncode == 0, run.stdout + run.stderr
    assert all(report["stats"][name]["changed"] == 0 for name in HOSTS), report["stats"]


def test_table_is_loaded_at_boot():
    """A restarted container boots systemd again: the role's unit loads the table, and leaves
    docker's own table alone (its name service redirect: names still resolve)."""
    name = "nfs-outsider"
    subprocess.run(["docker", "restart", name], check=True, capture_output=True, timeout=120)
    host = remote(name)
    deadline = time.monotonic() + 90
    while host.run("systemctl is-system-running --wait").stdout.strip() not in ("running", "degraded"):
        assert time.monotonic() < deadline, "the restarted container did not finish booting"
        time.sleep(1)
    assert host.service("pywps-gridengine-firewall").is_running
    assert "policy drop" in table(name)
    assert host.run("getent hosts nfs-server").rc == 0, host.check_output("nft list tables")
    assert not connects(SERVER, own_address(name), 22)


def test_control_host_inside_the_ssh_list_passes():
    """Over ssh the role reads SSH_CLIENT from the session; the docker connection
    passes the same variable into its exec session (ansible_docker_extra_env)."""
    variables = {
        "firewall_control_connection": "ssh",
        **PLAIN_DOCKER,
        "ansible_docker_extra_env": {"SSH_CLIENT": f"{SSH_ALLOWED} 50022 22"},
    }
    run, report = run_playbook("firewall", variables, "--limit", ",".join(HOSTS))
    assert run.returncode == 0, run.stdout + run.stderr
    assert all(report["stats"][name]["changed"] == 0 for name in HOSTS)


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"firewall_ssh_allow": ["10.213.3.0/33"]}, ["firewall_ssh_allow (10.213.3.0/33)"]),
        ({"firewall_ssh_allow": ["operators.example.org"]}, ["firewall_ssh_allow (operators.example.org)"]),
        ({"firewall_web_clients": ["10.213.3.5/24"]}, ["firewall_web_clients (10.213.3.5/24)"]),
        ({"firewall_ssh_allow": []}, ["firewall_ssh_allow is empty"]),
        (
            {"firewall_control_connection": "ssh", **PLAIN_DOCKER,
             "ansible_docker_extra_env": {"SSH_CLIENT": "192.0.2.7 50022 22"}},
            ["cut off Ansible's own SSH session", "from 192.0.2.7", f"firewall_ssh_allow ({SSH_ALLOWED})"],
        ),
        (
            {
                "firewall_control_connection": "ssh",
                **PLAIN_DOCKER,
                "ansible_docker_extra_env": {"SSH_CLIENT": f"{SSH_ALLOWED} 50022 2222"},
            },
            ["cut off Ansible's own SSH session", "to port 2222", "firewall_ssh_port is 22"],
        ),
    ],
    ids=["prefix-33", "host-name", "host-bits", "empty-ssh-list", "control-host-cut-off", "ssh-port"],
)
def test_bad_input_stops_the_role_before_it_changes_anything(host, variables, named):
    """Each of these would change the ruleset (or lock the control host out) if the
    role went past its checks: every host fails at one check, nothing changes."""
    before = host.file(RULES).sha256sum
    loaded = table(SERVER)
    run, report = run_playbook("firewall", variables, "--limit", ",".join(HOSTS))
    messages = {name: refusal(run, report, name) for name in HOSTS}
    message = " ".join(messages[SERVER].split())
    for text in named:
        assert text in message, message
    assert host.file(RULES).sha256sum == before
    assert table(SERVER) == loaded
