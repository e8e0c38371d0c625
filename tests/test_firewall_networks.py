"""The firewall role's ``firewall_networks`` filter: a rule's sources of one IP version as the fewest networks.

The ruleset (roles/firewall/templates/.../pywps-gridengine.nft.j2) puts its
answer into nft sets; it must equal what ansible.utils' ipv4/ipv6 and
cidr_merge gave before it (same text: a converge after the change rewrites
nothing but the digest), for the sources the role admits.
"""

import importlib.util

import pytest
from ansible.errors import AnsibleFilterError
from conftest import ROOT

SPEC = importlib.util.spec_from_file_location(
    "firewall_networks", ROOT / "roles" / "firewall" / "filter_plugins" / "firewall_networks.py")
plugin = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(plugin)
networks = plugin.FilterModule().filters()["firewall_networks"]


def test_hosts_become_host_networks_and_neighbours_merge():
    sources = ["10.213.0.13", "10.213.0.10", "10.213.0.12", "10.213.0.12", "fe80::1"]
    assert networks(sources, 4) == ["10.213.0.10/32", "10.213.0.12/31"]
    assert networks(sources, 6) == ["fe80::1/128"]


def test_networks_swallow_what_they_hold():
    assert networks(["10.1.2.3", "10.0.0.0/8", "10.1.0.0/16", "192.0.2.0/24"], "4") == ["10.0.0.0/8", "192.0.2.0/24"]
    assert networks(["0.0.0.0/0", "::/0"], 4) == ["0.0.0.0/0"]
    assert networks(["0.0.0.0/0", "::/0"], 6) == ["::/0"]
    assert networks([], 6) == []


@pytest.mark.parametrize("bad", ["10.0.0.1/8", "db1", "10.0.0.256", ""])
def test_anything_but_an_address_or_an_aligned_network_is_an_error(bad):
    with pytest.raises(AnsibleFilterError, match="is not an address or a network"):
        networks([bad], 4)


def test_the_version_is_4_or_6():
    with pytest.raises(AnsibleFilterError, match="version must be 4 or 6"):
        networks(["10.0.0.1"], 5)
