"""The host firewall (roles/firewall) across the whole cluster.

Each service is reachable from the hosts that need it and from no other:
every pair below opens (or fails to open, within 3 s: the SYN is dropped) a
TCP connection from one container to another's cluster address. The allowed
pairs prove the service listens there, so a refused pair is the firewall.
"""

import re
import shlex
import socket

import pytest
from pwgtest import own_address, remote

TABLE = "inet pywps_gridengine"
POSTGRESQL, QMASTER, EXECD, NFS, HTTP = 5432, 6444, 6445, 2049, 80

# (service, target host, port, source host, allowed)
MATRIX = [
    ("postgresql", "db1", POSTGRESQL, "web1", True),
    ("postgresql", "db1", POSTGRESQL, "exec1", True),
    ("postgresql", "db1", POSTGRESQL, "nfs1", False),
    ("postgresql", "db1", POSTGRESQL, "qmaster", False),
    ("sge_qmaster", "qmaster", QMASTER, "exec1", True),
    ("sge_qmaster", "qmaster", QMASTER, "web1", True),
    ("sge_qmaster", "qmaster", QMASTER, "db1", False),
    ("sge_execd", "exec1", EXECD, "qmaster", True),
    ("sge_execd", "exec1", EXECD, "db1", False),
    ("sge_execd", "exec1", EXECD, "web1", False),
    ("nfs", "nfs1", NFS, "web1", True),
    ("nfs", "nfs1", NFS, "exec1", True),
    ("nfs", "nfs1", NFS, "qmaster", True),
    ("nfs", "nfs1", NFS, "db1", False),
    ("http", "web1", HTTP, "db1", True),
    ("http", "web1", HTTP, "nfs1", True),
    ("http", "web1", HTTP, "exec2", True),
]


def connects(source: str, address: str, port: int) -> bool:
    """Whether SOURCE opens a TCP connection to ADDRESS:PORT within 3 s."""
    script = f"exec 3<>/dev/tcp/{address}/{port}"
    return remote(source).run(f"timeout 3 bash -c {shlex.quote(script)}").rc == 0


@pytest.mark.parametrize("name", ["web1", "qmaster", "exec1", "exec2", "db1", "nfs1"])
def test_every_host_has_the_table(name):
    listing = remote(name).check_output(f"nft list table {TABLE}")
    assert "hook input priority filter; policy drop;" in listing
    # Loaded at boot by the role's own unit, not nftables.service (which flushes every table).
    assert remote(name).service("pywps-gridengine-firewall").is_enabled
    assert not remote(name).service("nftables").is_enabled


# systemd-analyze security's overall exposure of the unit that loads the table at boot: 2.4
# when it was written (10 is the worst; it must run as root with CAP_NET_ADMIN in the host's
# network namespace), with a little room. Fail if it creeps back up.
MAX_EXPOSURE = 2.6


def test_boot_unit_sandbox_exposure_is_low():
    out = remote("web1").check_output("systemd-analyze security --no-pager pywps-gridengine-firewall.service")
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert found, out
    assert float(found.group(1)) <= MAX_EXPOSURE, out


@pytest.mark.parametrize(
    ("service", "target", "port", "source", "allowed"),
    MATRIX,
    ids=[f"{s}-{t}-from-{src}-{'allowed' if ok else 'refused'}" for s, t, _, src, ok in MATRIX],
)
def test_service_reachable_only_from_its_clients(service, target, port, source, allowed):
    assert connects(source, own_address(target), port) is allowed, (service, target, port, source)


def test_http_on_the_web_host_from_outside_the_cluster():
    """The test runner is no cluster host: nginx answers it all the same."""
    with socket.create_connection((own_address("web1"), HTTP), timeout=3):
        pass


def test_no_cluster_port_from_outside_the_cluster():
    """From the test runner (not in firewall_ssh_allow, no cluster host), the database is dropped."""
    with pytest.raises(OSError):
        socket.create_connection((own_address("db1"), POSTGRESQL), timeout=3).close()
