"""The kernel's NFS client and server, on nfs-vm: a virtual machine with its own
Debian kernel (testbed/vm.sh), reached over SSH as a real host is.

The client: the nfs_client role, unchanged and with nfs_client_mount at its
default, mounts nfs-ganesha's export with the kernel client. The server: the
nfs_server role with the kernel option exports /srv/kernel to one client
address, 127.0.0.1: nfs-vm's own kernel client reads and writes it over the
loopback (libnfs, the containers' client, speaks only NFSv4.0, which the role
turns off), and from any other address it is refused.
"""

import shlex
import uuid

from nfswire import KERNEL_EXPORT, KERNEL_MOUNT, SERVER, mount_kernel_export, nfs, url, write
from pwgtest import SHARED, own_address, remote, spec, write_as

VM = "nfs-vm"
testinfra_hosts = [spec(VM)]


def mount_of(host, path: str) -> dict[str, str]:
    """What is mounted at PATH (findmnt): source, fstype and options."""
    out = host.check_output(f"findmnt --noheadings --output SOURCE,FSTYPE,OPTIONS --mountpoint {shlex.quote(path)}")
    source, fstype, options = out.split()
    return {"source": source, "fstype": fstype, "options": options.split(",")}


def test_the_machine_runs_its_own_kernel(host):
    assert "cloud-amd64" in host.check_output("uname -r")
    assert host.run("systemd-detect-virt --container").rc != 0, "nfs-vm must not be a container"
    # Reached as the production path reaches a host: an unprivileged login, root through sudo.
    assert host.check_output("printenv SUDO_USER") == "pwg"


def test_shared_tree_is_mounted_with_the_kernel_client(host):
    server = own_address(SERVER)
    mount = mount_of(host, SHARED)
    assert mount["source"] == f"{server}:{SHARED}"
    assert mount["fstype"] == "nfs4"
    for option in ("rw", "nosuid", "nodev", "hard", "proto=tcp", "vers=4.2", "timeo=600", "retrans=2"):
        assert option in mount["options"], (option, mount["options"])
    fstab = [line.split() for line in host.file("/etc/fstab").content_string.splitlines()
             if line.strip() and not line.startswith("#")]
    entry = next(fields for fields in fstab if fields[1] == SHARED)
    assert entry[0] == f"{server}:{SHARED}" and entry[2] == "nfs"
    assert "_netdev" in entry[3].split(",") and "x-systemd.requires=network-online.target" in entry[3]


def test_service_user_writes_through_the_mount_and_the_others_read_it(host):
    name = f"outputs/vm-{uuid.uuid4().hex}.txt"
    content = "written by nfs-vm's kernel client"
    write_as(host, f"{SHARED}/{name}", content)
    # On the server's disk, owned by the service user (ids match across hosts).
    on_disk = remote(SERVER).file(f"{SHARED}/{name}")
    assert on_disk.content_string == content
    assert (on_disk.uid, on_disk.gid) == (2000, 2000)
    # From another client, over NFS.
    read = nfs("nfs-web", "nfs-cat", url(name))
    assert read.rc == 0, read.stderr
    assert read.stdout == content


def test_service_user_reads_what_another_client_wrote(host):
    name = f"outputs/web-{uuid.uuid4().hex}.txt"
    assert write("nfs-web", name, "written by nfs-web").rc == 0
    # The kernel client's attribute cache: a new name is looked up afresh.
    read = host.run(f"runuser -u wps -- cat {SHARED}/{name}")
    assert read.rc == 0, read.stderr
    assert read.stdout == "written by nfs-web"
    assert host.check_output(f"stat -c %u:%g {SHARED}/{name}") == "2000:2000"


def test_root_on_the_client_is_squashed(host):
    path = f"{SHARED}/outputs/root-{uuid.uuid4().hex}.txt"
    result = host.run(f"sh -c {shlex.quote(f'echo root > {path}')}")
    assert result.rc != 0
    assert "Permission denied" in result.stderr
    assert not remote(SERVER).file(path).exists


def test_kernel_server_exports_to_its_client_list_only(host):
    assert host.service("nfs-server").is_running
    assert host.service("nfs-server").is_enabled
    exports = host.check_output("exportfs -s")
    assert exports.split()[0] == KERNEL_EXPORT
    assert "127.0.0.1(" in exports and "root_squash" in exports and "no_root_squash" not in exports
    # From its other address (10.0.2.15, QEMU's network) nfs-vm is no client: refused.
    # (The outsider container proves that nfs-ganesha's export refuses a host it does not
    # list: every connection from nfs-vm reaches the containers from the same address.)
    result = mount_kernel_export(host, own_address(VM), "/mnt/refused")
    assert result.rc != 0
    assert "access denied" in result.stderr.lower(), result.stderr
    assert not host.mount_point("/mnt/refused").exists


def test_a_client_writes_and_reads_through_the_kernel_server(host):
    if not host.mount_point(KERNEL_MOUNT).exists:
        result = mount_kernel_export(host, "127.0.0.1")
        assert result.rc == 0, result.stderr
    assert mount_of(host, KERNEL_MOUNT)["fstype"] == "nfs4"
    name = f"outputs/through-nfsd-{uuid.uuid4().hex}.txt"
    write_as(host, f"{KERNEL_MOUNT}/{name}", "through nfsd")
    on_disk = host.file(f"{KERNEL_EXPORT}/{name}")
    assert on_disk.content_string == "through nfsd"
    assert (on_disk.uid, on_disk.gid) == (2000, 2000)
    assert host.check_output(f"runuser -u wps -- cat {KERNEL_MOUNT}/{name}") == "through nfsd"
    # Root on the client is squashed.
    path = f"{KERNEL_MOUNT}/outputs/root-{uuid.uuid4().hex}.txt"
    result = host.run(f"sh -c {shlex.quote(f'echo root > {path}')}")
    assert result.rc != 0
    assert "Permission denied" in result.stderr
