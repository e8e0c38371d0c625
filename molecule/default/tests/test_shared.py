"""The shared tree: the web host and every exec host see the same files."""

import os
import shlex
import uuid

import pytest
import testinfra
import testinfra.utils.ansible_runner

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
WEB = RUNNER.get_hosts("web")
EXEC = RUNNER.get_hosts("sge_exec")
SHARED = "/srv/wps"
testinfra_hosts = WEB + EXEC


def remote(name: str):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


def write_as_service_user(name: str, path: str, content: str) -> None:
    script = f"printf %s {shlex.quote(content)} > {shlex.quote(path)}"
    remote(name).check_output(f"runuser -u wps -- sh -c {shlex.quote(script)}")


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
    write_as_service_user(web, path, content)
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
    write_as_service_user(writer, path, content)
    try:
        for name in WEB:
            found = remote(name).file(path)
            assert found.exists, f"{path} written on {writer} is missing on {name}"
            assert found.content_string == content
            assert found.user == "wps"
    finally:
        remote(writer).run(f"rm -f {shlex.quote(path)}")
