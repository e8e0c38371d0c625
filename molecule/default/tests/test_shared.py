"""The shared tree: the web host and every exec host see the same files."""

import shlex
import uuid

import pytest
from pwgtest import SHARED, hosts, remote, write_as

WEB = hosts("web")
EXEC = hosts("sge_exec")
testinfra_hosts = WEB + EXEC


@pytest.mark.parametrize("subdir", ["outputs", "workdir", "log"])
def test_shared_directories_belong_to_the_service_user(host, subdir):
    directory = host.file(f"{SHARED}/{subdir}")
    assert directory.is_directory
    assert (directory.user, directory.group) == ("wps", "wps")
    assert (directory.uid, directory.gid) == (2000, 2000)


@pytest.mark.parametrize("web", WEB)
def test_exec_hosts_read_what_the_web_host_writes(web):
    path = f"{SHARED}/workdir/shared-{web}-{uuid.uuid4().hex}"
    content = f"written on {web}"
    write_as(remote(web), path, content)
    try:
        for name in EXEC:
            found = remote(name).file(path)
            assert found.exists, f"{path} written on {web} is missing on {name}"
            assert found.content_string == content
            assert found.user == "wps"
    finally:
        remote(web).run(f"rm -f {shlex.quote(path)}")


@pytest.mark.parametrize("writer", EXEC)
def test_web_hosts_read_what_an_exec_host_writes(writer):
    path = f"{SHARED}/outputs/shared-{writer}-{uuid.uuid4().hex}"
    content = f"written on {writer}"
    write_as(remote(writer), path, content)
    try:
        for name in WEB:
            found = remote(name).file(path)
            assert found.exists, f"{path} written on {writer} is missing on {name}"
            assert found.content_string == content
            assert found.user == "wps"
    finally:
        remote(writer).run(f"rm -f {shlex.quote(path)}")


@pytest.mark.parametrize("web", WEB)
@pytest.mark.parametrize("unit", ["pywps.service", "pywps-reconciler.service", "pywps-cleanup.service"])
def test_the_web_units_wait_for_the_shared_tree_mount(web, unit):
    """The stand-in volume is a mount, as NFS is on a real host: systemd orders the units that
    use the shared tree after its mount unit (RequiresMountsFor). A mount systemd only found
    mounted, like this volume, gives no Requires=; one from /etc/fstab does (the nfs scenario's
    VM proves the order across a real reboot)."""
    host = remote(web)
    assert host.mount_point(SHARED).exists
    mount_unit = host.check_output(f"systemd-escape --path --suffix=mount {SHARED}")
    assert mount_unit in host.check_output(f"systemctl show -P After {unit}").split()
