"""The common role on every cluster host: service user, UTC, name resolution."""

import pytest
from pwgtest import hosts, own_address

ALL = hosts("all")
testinfra_hosts = ALL


@pytest.fixture(scope="module")
def addresses() -> dict[str, str]:
    return {name: own_address(name) for name in ALL}


def test_service_user_is_the_same_everywhere(host):
    user = host.user("wps")
    assert user.exists
    assert (user.uid, user.gid) == (2000, 2000)
    assert user.group == "wps"
    assert user.shell == "/bin/bash"
    assert host.file(user.home).user == "wps"


def test_clock_is_utc(host):
    assert host.check_output("date +%Z") == "UTC"
    assert host.check_output("readlink /etc/localtime") == "/usr/share/zoneinfo/UTC"
    assert host.file("/etc/timezone").content_string == "UTC\n"


def test_every_host_resolves_every_host_both_ways(host, addresses):
    for name, address in addresses.items():
        forward = host.check_output(f"getent ahostsv4 {name}").split()[0]
        assert forward == address, f"{name} resolves to {forward} on {host.backend.host}"
        reverse = host.check_output(f"getent hosts {address}").split()[1]
        assert reverse == name, f"{address} resolves back to {reverse} on {host.backend.host}"


def test_own_name_is_not_loopback(host, addresses):
    me = host.check_output("hostname")
    assert host.check_output(f"getent ahostsv4 {me}").split()[0] == addresses[me]
