"""NFSv4 over the wire from the containers, with the userspace client (libnfs's
nfs-cp, nfs-ls, nfs-cat): the test bed's container kernels have no NFS client;
and nfs-vm's kernel client mounting its own kernel server's export. The nfs
scenario's test modules share these helpers.
"""

import shlex

from pwgtest import SHARED, remote, write_as

SERVER = "nfs-server"

# A refused attempt: the host firewall drops the outsider's packets and the portmapper NFSv3 needs,
# and libnfs retries a dropped connection for over two minutes; an attempt with no answer within
# this many seconds has not reached the export either (timeout's status 124).
REFUSED_WITHIN = 20

# nfs-vm's kernel server's export, and where nfs-vm's own kernel client mounts it.
KERNEL_EXPORT = "/srv/kernel"
KERNEL_MOUNT = "/mnt/kernel"
# A kernel mount that gets no answer is given up after this many seconds.
KERNEL_REFUSED_WITHIN = 30


def url(path: str, version: int = 4, server: str = SERVER, export: str = SHARED, port: int | None = None) -> str:
    """The libnfs URL of PATH in EXPORT on SERVER (NFS on PORT, if not 2049)."""
    query = f"version={version}" + (f"&nfsport={port}" if port else "")
    return f"nfs://{server}{export}/{path}?{query}"


def nfs(name: str, command: str, *args: str, user: str | None = "wps", refused: bool = False):
    """Run a libnfs command on host NAME, as USER (None: as root); REFUSED: given up after REFUSED_WITHIN s."""
    prefix = f"runuser -u {user} -- " if user else ""
    if refused:
        prefix = f"timeout -k 5 {REFUSED_WITHIN} {prefix}"
    return remote(name).run(prefix + " ".join([command, *map(shlex.quote, args)]))


def write(name: str, path: str, content: str, user: str | None = "wps", refused: bool = False, **where):
    """Copy CONTENT through NFS to PATH from host NAME (WHERE: url()'s server, export, port)."""
    host = remote(name)
    local = host.check_output("runuser -u wps -- mktemp")
    write_as(host, local, content)
    try:
        return nfs(name, "nfs-cp", local, url(path, **where), user=user, refused=refused)
    finally:
        host.run(f"rm -f {local}")


def mount_kernel_export(host, source: str, mount_point: str = KERNEL_MOUNT):
    """Mount nfs-vm's own kernel export from SOURCE (given up after KERNEL_REFUSED_WITHIN s)."""
    host.check_output(f"mkdir -p {mount_point}")
    return host.run(
        f"timeout -k 5 {KERNEL_REFUSED_WITHIN} mount -t nfs4 -o vers=4.2,proto=tcp,retry=0,nosuid,nodev "
        f"{source}:{KERNEL_EXPORT} {mount_point}"
    )
