"""The job database's credentials across the cluster: each tier holds its own role's only.

Web hosts connect as the web tier's role, exec hosts (where the jobs run) as
the launcher's; the schema owner's password is on no host but the database
host. Passwords live in a libpq password file only the service user reads;
pywps.cfg names it and holds none. Every connection is TLS with the server's
certificate verified. The rights are proven by connecting with each host's own
configuration, through the app's own interpreter (SQLAlchemy and psycopg2).
"""

import pathlib
import re
import shlex

import pytest
import yaml
from pwgtest import as_user, hosts

WEB = hosts("web")
EXEC = hosts("sge_exec")
testinfra_hosts = WEB + EXEC

CONFIG = "/etc/pywps/pywps.cfg"
PASSFILE = "/etc/pywps/pgpass"
PYTHON = "/opt/pywps/venv/bin/python"
SECRETS = pathlib.Path(__file__).parents[3] / "inventories" / "demo" / "group_vars" / "all" / "secrets.yml"

# Runs a statement with the host's own database URL from pywps.cfg; prints "ok" or the error's class.
PROBE = """
import configparser, sys
import sqlalchemy as sa
parser = configparser.ConfigParser(interpolation=None)
parser.read("/etc/pywps/pywps.cfg")
engine = sa.create_engine(parser.get("logging", "database"))
try:
    with engine.begin() as connection:
        connection.execute(sa.text(sys.argv[1]))
    print("ok")
except sa.exc.DBAPIError as e:
    print(type(e.orig).__name__, str(e.orig).splitlines()[0])
"""


@pytest.fixture(scope="module")
def secrets() -> dict[str, str]:
    return yaml.safe_load(SECRETS.read_text())


def tier(host) -> str:
    return "web" if host.backend.host in WEB else "launcher"


def database_url(host) -> str:
    for line in host.file(CONFIG).content_string.splitlines():
        if line.startswith("database"):
            return line.split("=", 1)[1].strip()
    raise AssertionError(f"no database line in {CONFIG}")


def probe(host, statement: str) -> str:
    run = as_user(host, f"{PYTHON} -c {shlex.quote(PROBE)} {shlex.quote(statement)}")
    assert run.rc == 0, run.stdout + run.stderr
    return run.stdout.strip()


def test_each_tier_connects_as_its_own_role_over_verified_tls(host):
    url = database_url(host)
    role = {"web": "wps_web", "launcher": "wps_launcher"}[tier(host)]
    assert re.match(rf"postgresql(\+psycopg2)?://{role}@[^/:]+:\d+/", url), url  # no password in the URL
    assert "sslmode=verify-full" in url and "sslrootcert=/etc/pywps/db-ca.crt" in url, url
    assert f"passfile={PASSFILE}" in url, url
    assert probe(host, "SELECT 1") == "ok"
    # The server says so itself: this very connection is encrypted.
    assert probe(host, "DO $$ BEGIN IF NOT (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) "
                       "THEN RAISE 'not encrypted'; END IF; END $$") == "ok"


def test_the_password_file_holds_this_tiers_password_only_and_only_the_service_user_reads_it(host, secrets):
    passfile = host.file(PASSFILE)
    assert (passfile.user, passfile.group, passfile.mode) == ("wps", "wps", 0o400)
    own = secrets[f"cluster_db_{tier(host)}_password"]
    others = {name: value for name, value in secrets.items() if value != own}
    with host.sudo():
        content = passfile.content_string
        assert own in content
        # No other tier's password, nor the schema owner's, anywhere in the app's configuration or /etc.
        for name, value in others.items():
            found = host.run(f"grep -rlF -- {shlex.quote(value)} /etc /opt/pywps/venv/bin")
            assert found.stdout == "", f"{name} found on {host.backend.host}: {found.stdout}"
    # Any other local account is refused the file.
    assert host.run(f"runuser -u nobody -- cat {PASSFILE}").rc != 0


def test_neither_tier_may_change_the_schema(host):
    for statement in ("CREATE TABLE pwg_intruder (x int)", "DROP TABLE pywps_gridengine_jobs",
                      "ALTER TABLE pywps_gridengine_jobs ADD COLUMN x int", "TRUNCATE pywps_requests"):
        assert probe(host, statement).startswith("InsufficientPrivilege"), statement


def test_the_launcher_reads_only_what_a_job_needs(host):
    if tier(host) != "launcher":
        pytest.skip("the web tier reads every table of the service")
    assert probe(host, "SELECT count(*) FROM pywps_gridengine_jobs") == "ok"
    assert probe(host, "SELECT count(*) FROM pywps_requests") == "ok"
    # The stored requests (every client's inputs) and other jobs' deletion are not a job's business.
    assert probe(host, "SELECT count(*) FROM pywps_stored_requests").startswith("InsufficientPrivilege")
    assert probe(host, "DELETE FROM pywps_gridengine_jobs WHERE false").startswith("InsufficientPrivilege")
    assert probe(host, "INSERT INTO pywps_gridengine_jobs (uuid) VALUES ('x')").startswith("InsufficientPrivilege")


def test_the_web_tier_reads_and_writes_the_rows(host):
    if tier(host) != "web":
        pytest.skip("the launcher's rights are tested on its own")
    for statement in ("SELECT count(*) FROM pywps_stored_requests", "DELETE FROM pywps_gridengine_jobs WHERE false",
                      "UPDATE pywps_requests SET message = message WHERE false"):
        assert probe(host, statement) == "ok", statement
