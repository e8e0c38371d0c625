"""The common role on every cluster host: service user, UTC, time sync, name resolution."""

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


def test_chrony_runs_and_answers(host):
    chrony = host.service("chrony")
    assert chrony.is_running
    assert chrony.is_enabled
    # No NTP server is reachable from the test bed: chronyd answers, synchronised or not.
    tracking = host.run("chronyc -n tracking")
    assert tracking.rc == 0, tracking.stderr
    assert "Reference ID" in tracking.stdout


def test_chrony_takes_its_sources_from_the_drop_in(host):
    sources = host.file("/etc/chrony/sources.d/pywps-gridengine.sources").content_string
    assert "\npool 2.debian.pool.ntp.org iburst\n" in sources
    debian_conf = host.file("/etc/chrony/chrony.conf").content_string
    assert not any(line.startswith("pool ") for line in debian_conf.splitlines())


def test_chronyd_leaves_the_shared_clock_alone_in_the_test_bed(host):
    # Test-bed switch common_time_sync_testbed: -x, no clock control.
    assert " -x" in host.check_output("ps -o args= -C chronyd")


def test_the_journal_is_bounded(host):
    """journald runs with the role's limits: its effective configuration has them, and it was
    started after the drop-in was written (a restart applied it)."""
    config = host.check_output("systemd-analyze cat-config systemd/journald.conf")
    assert "SystemMaxUse=500M" in config and "MaxRetentionSec=30day" in config
    started = int(host.check_output(
        'date -d "$(systemctl show -p ExecMainStartTimestamp --value systemd-journald)" +%s'))
    written = int(host.check_output("stat -c %Y /etc/systemd/journald.conf.d/pywps-gridengine.conf"))
    assert started >= written, "journald was not restarted after its drop-in changed"
    assert host.run("journalctl --disk-usage").rc == 0
