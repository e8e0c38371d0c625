"""The NFS roles over the wire: nfs-ganesha's export, proven with libnfs.

The containers have no kernel NFS client, so the clients talk NFSv4 with the
userspace client (nfs-cp, nfs-ls, nfs-cat) as the service user's uid. Through
the server's restart, nfs-vm's kernel client writes on as a running job does.
"""

import json
import shlex
import time
import uuid

import pytest
from nfswire import SERVER, nfs, url, write
from pwgtest import SHARED, own_address, refusal, remote, run_playbook, spec

CLIENTS = ["nfs-web", "nfs-exec"]
# nfs-vm's address as the server sees it (inventory/host_vars/nfs-vm.yml): a client of the export too.
VM_ADDRESS = "10.213.3.1"
VM = "nfs-vm"
testinfra_hosts = [spec(SERVER)]


def test_shared_tree_is_owned_by_the_service_user(host):
    uid = host.user("wps").uid
    assert uid == 2000
    for name in ("outputs", "workdir", "log"):
        directory = host.file(f"{SHARED}/{name}")
        assert directory.is_directory
        assert (directory.uid, directory.gid) == (2000, 2000)


@pytest.mark.parametrize(("writer", "reader"), [("nfs-web", "nfs-exec"), ("nfs-exec", "nfs-web")])
def test_client_writes_and_other_client_reads_over_nfs(host, writer, reader):
    name = f"outputs/molecule-{uuid.uuid4().hex}.txt"
    content = f"written by {writer}"
    result = write(writer, name, content)
    assert result.rc == 0, result.stderr
    listing = nfs(reader, "nfs-ls", url("outputs"))
    assert listing.rc == 0, listing.stderr
    line = next(line for line in listing.stdout.splitlines() if line.endswith(name.split("/")[1]))
    assert line.split()[2:4] == ["2000", "2000"], line
    read = nfs(reader, "nfs-cat", url(name))
    assert read.rc == 0, read.stderr
    assert read.stdout == content
    # What went over the wire is on the server's disk, owned by the service user.
    on_disk = host.file(f"{SHARED}/{name}")
    assert on_disk.content_string == content
    assert (on_disk.uid, on_disk.gid) == (2000, 2000)


def test_root_is_squashed():
    result = write("nfs-web", f"outputs/root-{uuid.uuid4().hex}.txt", "root", user=None)
    assert result.rc != 0
    assert "NFS4ERR_ACCESS" in result.stderr


def test_outsider_is_refused():
    listing = nfs("nfs-outsider", "nfs-ls", url(""), user=None, refused=True)
    assert listing.rc != 0
    as_service_user = write("nfs-outsider", f"outputs/outsider-{uuid.uuid4().hex}.txt", "outsider", refused=True)
    assert as_service_user.rc != 0


def test_nfsv3_is_not_served():
    listing = nfs("nfs-web", "nfs-ls", url("outputs", version=3), refused=True)
    assert listing.rc != 0


def start_writer(vm, path: str, unit: str, stop: str) -> None:
    """On VM, as the service user, a job's stand-in: PATH held open and a numbered line
    written to it every half second until the file STOP exists; the unit fails at the
    first write that fails."""
    script = (
        f"exec 3>{shlex.quote(path)}; i=0; "
        f"while [ ! -e {shlex.quote(stop)} ]; do echo $i >&3 || exit 5; i=$((i+1)); sleep 0.5; done"
    )
    vm.check_output(f"systemd-run --unit={unit} --uid=wps --property=RuntimeMaxSec=600 sh -c {shlex.quote(script)}")


def test_export_survives_a_server_restart(host):
    name = f"outputs/restart-{uuid.uuid4().hex}.txt"
    assert write("nfs-web", name, "before the restart").rc == 0
    # Through the restart, nfs-vm's kernel client keeps a file open and writes to it,
    # as a running job writes its output.
    vm = remote(VM)
    held = f"{SHARED}/outputs/held-{uuid.uuid4().hex}.txt"
    unit = f"pwg-writer-{uuid.uuid4().hex[:8]}"
    stop = f"/run/{unit}.stop"
    start_writer(vm, held, unit, stop)
    try:
        time.sleep(2)
        restarted = time.monotonic()
        host.check_output("systemctl restart nfs-ganesha.service")
        assert host.service("nfs-ganesha").is_enabled
        # After a restart the server is in its grace period (20 s in this scenario)
        # and answers NFS4ERR_GRACE to opens: a kernel client waits, so do we.
        deadline = time.monotonic() + 90
        while True:
            read = nfs("nfs-exec", "nfs-cat", url(name))
            if read.rc == 0 or time.monotonic() > deadline:
                break
            assert "NFS4ERR_GRACE" in read.stderr, read.stderr
            time.sleep(1)
        assert read.rc == 0, read.stderr
        assert read.stdout == "before the restart"
        assert write("nfs-exec", f"outputs/after-{uuid.uuid4().hex}.txt", "after").rc == 0
        # The kernel client creates a new file after the restart (it waits out the grace
        # period itself), and its writer wrote on through it.
        created = f"{SHARED}/outputs/vm-after-{uuid.uuid4().hex}.txt"
        made = vm.run(f"timeout 120 runuser -u wps -- sh -c {shlex.quote(f'printf after > {created}')}")
        assert made.rc == 0, made.stderr
        time.sleep(2)
        vm.check_output(f"touch {stop}")
        for _ in range(30):
            state = dict(
                line.split("=", 1)
                for line in vm.check_output(f"systemctl show --property ActiveState,Result {unit}").splitlines()
            )
            if state["ActiveState"] != "active":
                break
            time.sleep(1)
        # Ended (not hung in a write), and without a failed write.
        assert state["ActiveState"] != "active", state
        assert state["Result"] == "success", (state, vm.run(f"journalctl -u {unit} --no-pager | tail").stdout)
        print(json.dumps({"restart_to_new_file_seconds": round(time.monotonic() - restarted, 1)}))
    finally:
        vm.run(f"touch {stop}; systemctl stop {unit}; systemctl reset-failed {unit}; rm -f {stop}")
    # Every line reached the server, in order, none lost across the restart.
    lines = host.file(held).content_string.split()
    assert len(lines) > 10, lines
    assert lines == [str(i) for i in range(len(lines))], lines
    assert host.file(created).content_string == "after"


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"Lease_Lifetime": 5, "Grace_Period": 5}, "Lease_Lifetime (5)"),
        ({"Lease_Lifetime": 60, "Grace_Period": 30}, "Grace_Period (30)"),
        ({"Lease_Lifetime": "a minute"}, "Lease_Lifetime (a minute)"),
        ({"Grace_Period": 600}, "Grace_Period (600)"),
    ],
    ids=["lease-5s", "grace-under-lease", "lease-in-words", "grace-10min"],
)
def test_a_lease_or_grace_period_clients_cannot_live_with_stops_the_role(host, settings, named):
    conf = "/etc/ganesha/ganesha.conf"
    before = host.file(conf).sha256sum
    run, report = run_playbook(
        "nfs", {"nfs_server_ganesha_nfsv4_settings": settings}, "--limit", ",".join([SERVER, *CLIENTS]),
        "--tags", "nfs_server",
    )
    message = " ".join(refusal(run, report, SERVER).split())
    assert "nfs_server_ganesha_nfsv4_settings" in message and named in message, message
    assert host.file(conf).sha256sum == before
    assert host.service("nfs-ganesha").is_running


def test_clients_see_the_stand_in_at_the_shared_path():
    for name in CLIENTS:
        assert remote(name).mount_point(SHARED).exists, f"{SHARED} is not mounted on {name}"


def test_kernel_server_configuration(host):
    """nfsd cannot run in containers: check what the role renders for it."""
    root = "/var/tmp/nfs-kernel"
    clients = sorted([own_address(name) for name in CLIENTS] + [VM_ADDRESS])
    exports = [
        line
        for line in host.file(f"{root}/etc/exports.d/pywps-gridengine.exports").content_string.splitlines()
        if line and not line.startswith("#")
    ]
    assert len(exports) == 1
    path, *entries = exports[0].split()
    assert path == SHARED
    assert sorted(entry.split("(")[0] for entry in entries) == clients
    for entry in entries:
        options = entry.split("(")[1].rstrip(")").split(",")
        assert "rw" in options and "root_squash" in options and "sec=sys" in options
        assert "no_root_squash" not in options and "insecure" not in options
    assert "*" not in exports[0]
    nfs_conf = host.file(f"{root}/etc/nfs.conf.d/pywps-gridengine.conf").content_string
    assert "vers3=n" in nfs_conf and "vers4=y" in nfs_conf and "udp=n" in nfs_conf
