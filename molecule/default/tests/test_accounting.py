"""Grid Engine's accounting on the shared tree: the qmaster writes it there
(its cell's common/accounting is a link to it) and the web host, where the
reconciler runs, reads it with `qacct -f`."""

import time

from pwgtest import SHARED, as_user, hosts, remote

ACCOUNTING = f"{SHARED}/sge/accounting"
CELL_ACCOUNTING = "/var/lib/gridengine/default/common/accounting"
QMASTER = hosts("sge_qmaster")[0]
testinfra_hosts = hosts("web")


def record(host, job_id: str, timeout: float = 30) -> str:
    """The job's record as HOST reads the shared file, as the service user; waits for the job's end."""
    deadline = time.monotonic() + timeout
    command = f"qacct -f {ACCOUNTING} -j {job_id}"
    while (result := as_user(host, command)).rc != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert result.rc == 0, f"no record of job {job_id} in {ACCOUNTING} on {host.backend.host}: {result.stderr}"
    return result.stdout


def test_cell_accounting_is_a_link_to_the_shared_file():
    qmaster = remote(QMASTER)
    link = qmaster.file(CELL_ACCOUNTING)
    assert link.is_symlink
    assert link.linked_to == ACCOUNTING
    shared = qmaster.file(ACCOUNTING)
    assert shared.is_file
    assert (shared.user, shared.mode) == ("sgeadmin", 0o644)
    directory = qmaster.file(f"{SHARED}/sge")
    assert (directory.user, directory.mode) == ("sgeadmin", 0o755)


def test_web_tier_is_told_where_accounting_is(host):
    assert f"accounting_file = {ACCOUNTING}\n" in host.file("/etc/pywps/pywps.cfg").content_string


def test_web_host_reads_the_record_of_a_job_the_qmaster_wrote(host):
    submitted = as_user(host, "qsub -terse -b y -N acct-check /bin/true")
    assert submitted.rc == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    seen = record(host, job_id)
    assert "acct-check" in seen
    # The same record the qmaster reads through its own cell's path.
    on_qmaster = as_user(remote(QMASTER), f"qacct -j {job_id}")
    assert on_qmaster.rc == 0, on_qmaster.stderr
    assert "acct-check" in on_qmaster.stdout
    # qacct -j with no job lists every job of the file.
    listing = as_user(host, f"qacct -f {ACCOUNTING} -j")
    assert listing.rc == 0, listing.stderr
    assert any(line.split() == ["jobnumber", job_id] for line in listing.stdout.splitlines())
