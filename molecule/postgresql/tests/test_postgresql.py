"""The postgresql role over the network: who may connect, with what (the backup: test_postgresql_backup.py)."""

import pathlib
import shlex
import uuid

import pytest
import yaml
from pwgtest import remote, spec

VALUES = pathlib.Path(__file__).parent.parent / "inventory" / "group_vars" / "all" / "test.yml"
PASSWORD = yaml.safe_load(VALUES.read_text())["cluster_db_password"]
DB_HOST = "pg-db"
testinfra_hosts = [spec(DB_HOST)]


def psql(name: str, sql: str, password: str = PASSWORD, user: str = "wps", dbname: str = "wps"):
    """Run SQL on the database server from host NAME over TCP with a password."""
    conninfo = f"host={DB_HOST} port=5432 dbname={dbname} user={user} sslmode=disable connect_timeout=5"
    return remote(name).run(
        f"env PGPASSWORD={shlex.quote(password)} psql -X -At -v ON_ERROR_STOP=1"
        f" {shlex.quote(conninfo)} -c {shlex.quote(sql)}"
    )


def as_postgres(host, sql: str, dbname: str = "wps") -> str:
    return host.check_output(f"runuser -u postgres -- psql -X -At -d {dbname} -c {shlex.quote(sql)}")


@pytest.fixture(scope="module")
def row() -> str:
    """A row the web host writes through the network, for the exec host to read."""
    token = uuid.uuid4().hex
    result = psql(
        "pg-web",
        "CREATE TABLE IF NOT EXISTS molecule_jobs (token text PRIMARY KEY, host text);"
        f"INSERT INTO molecule_jobs VALUES ('{token}', 'pg-web');"
        f"SELECT token FROM molecule_jobs WHERE token = '{token}';",
    )
    assert result.rc == 0, result.stderr
    assert result.stdout.split()[-1] == token
    return token


def test_allowed_hosts_write_and_read_with_the_password(row):
    result = psql("pg-exec", f"SELECT host FROM molecule_jobs WHERE token = '{row}';")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "pg-web"
    update = psql("pg-exec", f"UPDATE molecule_jobs SET host = 'pg-exec' WHERE token = '{row}' RETURNING host;")
    assert update.rc == 0, update.stderr


def test_service_role_owns_its_tables_and_schema(host, row):
    assert as_postgres(host, "SELECT tableowner FROM pg_tables WHERE tablename = 'molecule_jobs'") == "wps"
    assert as_postgres(host, "SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'public'") == "wps"
    assert as_postgres(host, "SELECT datdba::regrole FROM pg_database WHERE datname = 'wps'", "postgres") == "wps"


def test_outsider_is_refused():
    result = psql("pg-outsider", "SELECT 1;")
    assert result.rc != 0
    assert "no pg_hba.conf entry" in result.stderr


def test_wrong_password_is_refused():
    result = psql("pg-web", "SELECT 1;", password="not-the-password")
    assert result.rc != 0
    assert "password authentication failed" in result.stderr


@pytest.mark.parametrize(("user", "dbname"), [("postgres", "wps"), ("wps", "postgres")])
def test_clients_reach_only_the_service_database_as_the_service_role(user, dbname):
    result = psql("pg-web", "SELECT 1;", user=user, dbname=dbname)
    assert result.rc != 0
    assert "no pg_hba.conf entry" in result.stderr


def test_listens_on_the_cluster_address_only(host):
    listening = host.check_output("ss -Hltn sport = :5432").splitlines()
    local = {line.split()[3] for line in listening}
    address = remote("pg-web").check_output(f"getent ahostsv4 {DB_HOST}").split()[0]
    assert local == {f"{address}:5432"}


def test_password_is_stored_as_scram(host):
    stored = "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'wps'"
    assert as_postgres(host, stored, "postgres") == "t"
    assert as_postgres(host, "SHOW password_encryption") == "scram-sha-256"


def test_settings_are_a_drop_in(host):
    dropin = host.file("/etc/postgresql/15/main/conf.d/50-pywps-gridengine.conf")
    assert dropin.user == "postgres"
    assert "Ansible managed" in dropin.content_string
    assert "listen_addresses" in dropin.content_string
    assert "Ansible managed" not in host.file("/etc/postgresql/15/main/postgresql.conf").content_string
