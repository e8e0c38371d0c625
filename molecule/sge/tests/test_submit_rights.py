"""Who may submit, as an operator changes it: exec hosts become submit hosts
only when sge_qmaster_exec_hosts_submit asks for it and leave the list again on
the next converge without it; extra users join the access list the same way;
bad settings stop the qmaster's role naming the variable.

Runs last (files run in name order): it converges the qmaster from the
scenario's inventory file, where sge-exec3 is no exec host (test_grow.py
added it with an extra inventory source), so it must come after test_shrink.py has retired
sge-exec3 - a converge before would disable the host under that test."""

import subprocess

import pytest
from pwgtest import SERVICE_USER, accounting, as_user, refusal, remote, run_playbook

QMASTER = "sge-qmaster"
SUBMIT = "sge-submit"
EXEC_HOSTS = ["sge-exec1", "sge-exec2"]
ACCESS_LIST = "wps_users"
EXTRA_USER, EXTRA_UID = "intruder", 3001

testinfra_hosts = [SUBMIT]


def converge_qmaster(variables: dict) -> tuple[subprocess.CompletedProcess, dict]:
    """playbooks/sge.yml's qmaster tier with extra variables; the run and its JSON report."""
    return run_playbook("sge", variables, "--tags", "sge_qmaster")


def submit_hosts() -> list[str]:
    return sorted(remote(QMASTER).check_output("qconf -ss").split())


def access_list() -> list[str]:
    for line in remote(QMASTER).check_output(f"qconf -su {ACCESS_LIST}").splitlines():
        if line.startswith("entries"):
            return sorted(line.split(None, 1)[1].replace(",", " ").split())
    raise AssertionError(f"no entries in access list {ACCESS_LIST}")


@pytest.fixture(scope="module")
def extra_user():
    """A local user (uid >= 1000) on the submit host and the exec hosts, where its jobs would run."""
    for name in [SUBMIT, *EXEC_HOSTS]:
        remote(name).check_output(f"getent passwd {EXTRA_USER} || useradd --create-home --uid {EXTRA_UID} "
                                  f"--shell /bin/bash {EXTRA_USER}")
    return EXTRA_USER


def test_exec_hosts_and_extra_users_on_request_then_off_again(host, extra_user):
    assert submit_hosts() == [SUBMIT]
    assert as_user(host, "qsub -b y true", user=extra_user).rc != 0

    run, report = converge_qmaster({"sge_qmaster_exec_hosts_submit": True, "sge_qmaster_extra_users": [extra_user]})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    assert report["stats"][QMASTER]["changed"] > 0
    assert submit_hosts() == sorted([SUBMIT, *EXEC_HOSTS])
    assert access_list() == sorted([SERVICE_USER, extra_user])
    # An exec host submits a job that runs; the extra user's job runs too.
    from_exec = as_user(remote(EXEC_HOSTS[0]), "qsub -terse -sync y -o /dev/null -e /dev/null -b y true")
    assert from_exec.rc == 0, from_exec.stderr
    assert accounting(remote(QMASTER), from_exec.stdout.split()[0])["hostname"] in EXEC_HOSTS
    by_extra = as_user(host, "qsub -terse -sync y -o /dev/null -e /dev/null -b y true", user=extra_user)
    assert by_extra.rc == 0, by_extra.stderr
    record = accounting(remote(QMASTER), by_extra.stdout.split()[0])
    assert (record["owner"], record["exit_status"].split()[0]) == (extra_user, "0")

    # The next converge without them takes both away again.
    run, report = converge_qmaster({})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    assert submit_hosts() == [SUBMIT]
    assert access_list() == [SERVICE_USER]
    refused = as_user(remote(EXEC_HOSTS[0]), "qsub -b y true")
    assert refused.rc != 0 and f'host "{EXEC_HOSTS[0]}" is not a submit host' in refused.stderr
    refused = as_user(host, "qsub -b y true", user=extra_user)
    assert refused.rc != 0 and "is not allowed to submit jobs" in refused.stderr

    # And once more: nothing left to change.
    run, report = converge_qmaster({})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    assert report["stats"][QMASTER]["changed"] == 0, report["stats"]


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"sge_qmaster_extra_users": ["Bad User"]}, "sge_qmaster_extra_users"),
        ({"sge_qmaster_extra_users": ["alice", "root"]}, "sge_qmaster_extra_users"),
        ({"sge_qmaster_job_owner": "wps,intruder"}, "sge_qmaster_job_owner"),
        ({"sge_qmaster_exec_hosts_submit": "maybe"}, "sge_qmaster_exec_hosts_submit"),
    ],
    ids=["blank-in-name", "root", "comma-list", "not-a-boolean"],
)
def test_bad_access_settings_stop_the_role_before_it_changes_anything(variables, named):
    before = (submit_hosts(), access_list())
    message = refusal(*converge_qmaster(variables), QMASTER)
    assert named in message, message
    assert (submit_hosts(), access_list()) == before
