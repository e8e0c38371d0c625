"""The options the nfs_client role mounts the shared tree with: nosuid and nodev,
and options without them refused unless nfs_client_allow_suid_dev says so.

The test bed's kernels have no NFS client (nfs_client_mount: false), so the
mount is read where the role would make it: playbooks/nfs.yml in check mode
with nfs_client_mount true, whose mount task reports the /etc/fstab entry it
would write (ansible.posix.mount returns its arguments) and changes nothing.
"""

import json

import pytest
from pwgtest import SHARED, failed_tasks, run_playbook, spec

# One client: both run the same role with the same settings, and each case is a playbook run.
CLIENTS = ["nfs-web"]
SERVER = "nfs-server"
MOUNT_TASK = "Mount the export and record it in /etc/fstab"
testinfra_hosts = [spec(name) for name in CLIENTS]


def would_mount(report: dict, host_name: str) -> dict:
    """The mount task's result on HOST_NAME in a check-mode run."""
    results = [
        task["hosts"][host_name]
        for play in report["plays"]
        for task in play["tasks"]
        if task["task"]["name"].endswith(MOUNT_TASK) and host_name in task["hosts"]
    ]
    assert len(results) == 1, f"the mount task ran {len(results)} times on {host_name}"
    return results[0]


def check_run(host, variables: dict):
    """playbooks/nfs.yml in check mode on HOST's client; /etc/fstab and the mounts must stay as they were."""
    name = host.backend.get_hostname()
    before = (host.file("/etc/fstab").sha256sum, host.check_output("findmnt --noheadings --list"))
    # Limited to the client, the run has no facts of the server to find its address: named here.
    run, report = run_playbook("nfs", {"nfs_client_server": SERVER, **variables}, "--check", "--limit", name)
    assert (host.file("/etc/fstab").sha256sum, host.check_output("findmnt --noheadings --list")) == before
    return name, run, report


def test_the_shared_tree_would_be_mounted_nosuid_and_nodev(host):
    name, run, report = check_run(host, {"nfs_client_mount": True})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    mount = would_mount(report, name)
    assert mount["fstype"] == "nfs"
    assert mount["src"].endswith(f":{SHARED}") and mount["name"] == SHARED
    options = mount["opts"].split(",")
    assert {"nosuid", "nodev", "hard", "proto=tcp", "vers=4.2"} <= set(options), options
    assert not {"suid", "dev", "defaults"} & set(options), options


@pytest.mark.parametrize(
    ("variables", "said"),
    [
        ({"nfs_client_extra_options": ["suid"]}, "hold suid"),
        ({"nfs_client_extra_options": ["dev"]}, "hold dev"),
        ({"nfs_client_extra_options": ["defaults"]}, "hold defaults"),
        ({"nfs_client_options": ["rw", "hard", "nodev"]}, "lack nosuid"),
        ({"nfs_client_options": ["rw", "hard"]}, "lack nosuid and nodev"),
    ],
    ids=["suid", "dev", "defaults", "no-nosuid", "neither"],
)
def test_options_dropping_nosuid_or_nodev_are_refused_naming_the_override(host, variables, said):
    name, run, report = check_run(host, {"nfs_client_mount": True, **variables})
    assert run.returncode != 0
    failures = failed_tasks(report, name)
    assert len(failures) == 1, failures
    message = json.dumps(failures[0])
    assert said in message and "nfs_client_allow_suid_dev" in message, message
    assert not any(task["task"]["name"].endswith(MOUNT_TASK) and name in task["hosts"]
                   for play in report["plays"] for task in play["tasks"])  # stopped before the mount


def test_the_override_mounts_as_told(host):
    name, run, report = check_run(host, {"nfs_client_mount": True, "nfs_client_allow_suid_dev": True,
                                         "nfs_client_extra_options": ["suid", "dev"]})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    options = would_mount(report, name)["opts"].split(",")
    assert options[-2:] == ["suid", "dev"], options  # after nosuid,nodev: the later option wins
