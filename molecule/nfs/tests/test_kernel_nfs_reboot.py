"""nfs-vm rebooted for real (its kernel restarts; not a container restart): the
NFS mount comes back by itself, after the network and before the services that
need the shared tree, and the kernel NFS server exports again.

This module runs right after test_kernel_nfs.py (pytest takes the files in name
order), before test_nfs.py restarts nfs-ganesha.
"""

import json
import os
import subprocess
import time
import uuid
import warnings

from nfswire import KERNEL_MOUNT, mount_kernel_export
from pwgtest import INVENTORY, SHARED, remote, spec, write_as

VM = "nfs-vm"
SERVER = "nfs-server"
testinfra_hosts = [spec(VM)]


def monotonic(host, unit: str, what: str = "ActiveEnterTimestampMonotonic") -> int:
    """When UNIT reached a state in this boot, in µs since boot (0: never)."""
    return int(host.check_output(f"systemctl show --value --property {what} {unit}"))


def kernel_log(host) -> str:
    """The last lines of the kernel's log of this boot (the NFS client's complaints)."""
    return host.run("journalctl -k -b --no-pager | tail -n 30").stdout


def reboot() -> float:
    """Reboot nfs-vm with ansible.builtin.reboot (which waits for the new boot to answer): seconds taken."""
    start = time.monotonic()
    run = subprocess.run(
        ["ansible", "-i", os.path.dirname(INVENTORY), VM, "--become", "-m", "ansible.builtin.reboot",
         "-a", "reboot_timeout=600 test_command='systemctl is-system-running --wait || true'", "-o"],
        capture_output=True, text=True, check=False,
        # Ansible's own strategy: the reboot action reconnects on its own.
        env={**os.environ, "ANSIBLE_STRATEGY": "linear"},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return time.monotonic() - start


def test_after_a_reboot_the_mount_and_the_export_come_back_in_order(host):
    before = host.file("/proc/sys/kernel/random/boot_id").content_string.strip()
    kept = f"outputs/kept-{uuid.uuid4().hex}.txt"
    try:
        write_as(host, f"{SHARED}/{kept}", "written before the reboot")
    except AssertionError as err:
        raise AssertionError(f"{err}\n{kernel_log(host)}") from err

    seconds = reboot()

    host = remote(VM)
    boot_id = host.file("/proc/sys/kernel/random/boot_id").content_string.strip()
    assert boot_id != before, "the machine did not reboot"
    print(json.dumps({"reboot_seconds": round(seconds, 1)}))

    # The mount is back, by itself, with the kernel client.
    assert host.check_output(f"findmnt --noheadings --output FSTYPE --mountpoint {SHARED}") == "nfs4"
    # What was written before the reboot reads back. Once (on a loaded machine) the first reads
    # of the new boot failed with EIO: allow them a minute, say so as a warning, and show the
    # kernel's log if it never reads.
    start = time.monotonic()
    first_error = None
    while True:
        read = host.run(f"runuser -u wps -- cat {SHARED}/{kept}")
        if read.rc == 0 or time.monotonic() - start > 60:
            break
        first_error = first_error or read.stderr.strip()
        time.sleep(2)
    assert read.rc == 0, (read.stderr, kernel_log(host))
    assert read.stdout == "written before the reboot"
    if first_error:
        warnings.warn(f"after the reboot, reads failed for {time.monotonic() - start:.0f} s: {first_error}")

    # In order: the network was online before the mount, the mount before the unit that needs it.
    mount_unit = host.check_output(f"systemd-escape --path --suffix=mount {SHARED}")
    online = monotonic(host, "network-online.target")
    mounted = monotonic(host, mount_unit)
    probe_started = monotonic(host, "shared-tree-probe.service", "ExecMainStartTimestampMonotonic")
    assert 0 < online <= mounted, (online, mounted)
    assert mounted <= probe_started, (mounted, probe_started)
    assert mount_unit in host.check_output("systemctl show --value --property After shared-tree-probe.service")
    assert host.check_output("systemctl show --value --property Result shared-tree-probe.service") == "success"
    restarts = int(host.check_output("systemctl show --value --property NRestarts shared-tree-probe.service"))
    if restarts:
        warnings.warn(f"the probe unit's write through the mount failed {restarts} time(s) at boot")
    # What the unit wrote at boot went through the mount: the server has it.
    assert remote(SERVER).file(f"{SHARED}/outputs/nfs-vm.boot").content_string.strip() == boot_id

    # The kernel server exports again: its client mounts it (the mount was not for boot).
    assert host.service("nfs-server").is_running
    mounted = mount_kernel_export(host, "127.0.0.1")
    assert mounted.rc == 0, mounted.stderr
    assert host.check_output(f"runuser -u wps -- ls -d {KERNEL_MOUNT}/outputs") == f"{KERNEL_MOUNT}/outputs"