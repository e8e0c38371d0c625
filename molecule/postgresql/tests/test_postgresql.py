"""The postgresql role over the network: TLS only, who may connect as which role, with which rights.

The backup: test_postgresql_backup.py. The app's tables and the launcher's
grants are made by converge.yml from the app's own code (app_tables.py), as the
pywps role's one-shot step makes them.
"""

import pathlib
import shlex
import uuid

import pytest
import yaml
from pwgtest import refusal, remote, run_playbook, spec

VALUES = yaml.safe_load((pathlib.Path(__file__).parent.parent / "inventory" / "group_vars" / "all" / "test.yml")
                        .read_text())
PASSWORDS = {
    "wps": VALUES["cluster_db_password"],
    "wps_web": VALUES["cluster_db_web_password"],
    "wps_launcher": VALUES["cluster_db_launcher_password"],
}
DB_HOST = "pg-db"
CA = "/etc/pywps/db-ca.crt"
testinfra_hosts = [spec(DB_HOST)]


def psql(name: str, sql: str, user: str = "wps_web", password: str | None = None, dbname: str = "wps",
         ssl: str = f"sslmode=verify-full sslrootcert={CA}"):
    """Run SQL on the database server from host NAME over TCP, verifying its certificate by default."""
    conninfo = f"host={DB_HOST} port=5432 dbname={dbname} user={user} {ssl} connect_timeout=5"
    secret = PASSWORDS.get(user, "not-a-role") if password is None else password
    return remote(name).run(
        f"env PGPASSWORD={shlex.quote(secret)} psql -X -At -v ON_ERROR_STOP=1"
        f" {shlex.quote(conninfo)} -c {shlex.quote(sql)}"
    )


def as_postgres(host, sql: str, dbname: str = "wps") -> str:
    return host.check_output(f"runuser -u postgres -- psql -X -At -d {dbname} -c {shlex.quote(sql)}")


def refused(result, why: str) -> None:
    assert result.rc != 0, result.stdout
    assert why in result.stderr, result.stderr


@pytest.fixture(scope="module")
def job() -> str:
    """A job the web tier records (its requests row and job row) for the launcher to update."""
    token = uuid.uuid4().hex
    result = psql(
        "pg-web",
        "INSERT INTO pywps_requests (uuid, pid, operation, version, time_start, identifier, status)"
        f" VALUES ('{token}', 1, 'execute', '1.0.0', now(), 'sleep', 1);"
        "INSERT INTO pywps_stored_requests (uuid, request) VALUES"
        f" ('{token}', convert_to('{{}}', 'UTF8'));"
        "INSERT INTO pywps_gridengine_jobs (uuid, identifier, state, created_at, updated_at)"
        f" VALUES ('{token}', 'sleep', 'accepted', now(), now());"
        f"SELECT uuid FROM pywps_gridengine_jobs WHERE uuid = '{token}';",
    )
    assert result.rc == 0, result.stderr
    assert result.stdout.split()[-1] == token
    return token


def test_plain_tcp_is_refused():
    refused(psql("pg-web", "SELECT 1;", ssl="sslmode=disable"), "no encryption")


def test_wrong_ca_fails_verification():
    result = psql("pg-web", "SELECT 1;", ssl="sslmode=verify-full sslrootcert=/etc/ssl/certs/ca-certificates.crt")
    refused(result, "certificate verify failed")


@pytest.mark.parametrize(("name", "user"), [("pg-web", "wps_web"), ("pg-web", "wps"), ("pg-exec", "wps_launcher")])
def test_clients_connect_over_verified_tls(name, user):
    result = psql(name, "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid();", user=user)
    assert result.rc == 0, result.stderr
    ssl, version = result.stdout.strip().split("|")
    assert ssl == "t"
    assert version in ("TLSv1.2", "TLSv1.3")


def test_server_certificate_names_the_host_and_its_address(host):
    text = host.check_output("openssl x509 -in /etc/postgresql/15/main/tls/server.crt -noout -ext subjectAltName")
    address = remote("pg-web").check_output(f"getent ahostsv4 {DB_HOST}").split()[0]
    assert f"DNS:{DB_HOST}" in text
    assert f"IP Address:{address}" in text
    key = host.file("/etc/postgresql/15/main/tls/server.key")
    assert (key.user, key.mode) == ("postgres", 0o600)


@pytest.mark.parametrize(("name", "user"), [("pg-exec", "wps_web"), ("pg-exec", "wps"), ("pg-web", "wps_launcher")])
def test_each_role_only_from_its_own_hosts(name, user):
    refused(psql(name, "SELECT 1;", user=user), "no pg_hba.conf entry")


def test_outsider_is_refused():
    refused(psql("pg-outsider", "SELECT 1;"), "no pg_hba.conf entry")


def test_wrong_password_is_refused():
    refused(psql("pg-web", "SELECT 1;", password="not-the-password"), "password authentication failed")


@pytest.mark.parametrize(("user", "dbname"), [("postgres", "wps"), ("wps_web", "postgres")])
def test_clients_reach_only_the_service_database_as_the_service_roles(user, dbname):
    refused(psql("pg-web", "SELECT 1;", user=user, dbname=dbname, password="x" * 16), "no pg_hba.conf entry")


def test_web_tier_reads_writes_and_deletes_rows(job):
    result = psql(
        "pg-web",
        f"UPDATE pywps_gridengine_jobs SET sge_job_id = '7', client = '192.0.2.1' WHERE uuid = '{job}';"
        f"SELECT count(*) FROM pywps_stored_requests WHERE uuid = '{job}';"
        "INSERT INTO pywps_gridengine_documents (uuid, sha256, size) VALUES ('gone', 'x', 1);"
        "DELETE FROM pywps_gridengine_documents WHERE uuid = 'gone';",
    )
    assert result.rc == 0, result.stderr


@pytest.mark.parametrize("sql", ["CREATE TABLE molecule_web (i int);", "DROP TABLE pywps_stored_requests;",
                                 "ALTER TABLE pywps_gridengine_jobs ADD COLUMN x int;",
                                 "TRUNCATE pywps_gridengine_jobs;"])
def test_web_tier_cannot_change_the_schema(sql):
    result = psql("pg-web", sql)
    assert result.rc != 0
    assert "permission denied" in result.stderr or "must be owner" in result.stderr, result.stderr


def test_launcher_updates_its_job_row_and_requests_row(job):
    result = psql(
        "pg-exec",
        f"SELECT state FROM pywps_gridengine_jobs WHERE uuid = '{job}';"
        "UPDATE pywps_gridengine_jobs SET state = 'started', started_at = coalesce(started_at, now()),"
        f" heartbeat_at = now(), exec_host = 'pg-exec', updated_at = now() WHERE uuid = '{job}' AND state = 'accepted';"
        f"UPDATE pywps_requests SET pid = 42, status = 2, time_end = now(), percent_done = 0 WHERE uuid = '{job}';"
        f"DELETE FROM pywps_gridengine_documents WHERE uuid = '{job}';"
        f"INSERT INTO pywps_gridengine_documents (uuid, sha256, size, document) VALUES ('{job}', 'x', 1, 'd');"
        f"SELECT state FROM pywps_gridengine_jobs WHERE uuid = '{job}';",
        user="wps_launcher",
    )
    assert result.rc == 0, result.stderr
    states = [line for line in result.stdout.split("\n") if line in ("accepted", "started")]  # not the command tags
    assert states == ["accepted", "started"], result.stdout


@pytest.mark.parametrize("sql", [
    "SELECT * FROM pywps_stored_requests;",
    "DELETE FROM pywps_stored_requests;",
    "DELETE FROM pywps_gridengine_jobs;",
    "DELETE FROM pywps_requests;",
    "INSERT INTO pywps_gridengine_jobs (uuid, identifier, state, created_at, updated_at)"
    " VALUES ('x', 'x', 'accepted', now(), now());",
    "UPDATE pywps_gridengine_jobs SET client = 'x', resubmits = 9;",
    "SELECT document FROM pywps_gridengine_documents;",
    "CREATE TABLE molecule_launcher (i int);",
])
def test_launcher_gets_nothing_a_job_does_not_need(sql):
    refused(psql("pg-exec", sql, user="wps_launcher"), "permission denied")


def test_owner_owns_the_database_schema_and_tables(host, job):
    assert as_postgres(host, "SELECT tableowner FROM pg_tables WHERE tablename = 'pywps_gridengine_jobs'") == "wps"
    assert as_postgres(host, "SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'public'") == "wps"
    assert as_postgres(host, "SELECT datdba::regrole FROM pg_database WHERE datname = 'wps'", "postgres") == "wps"
    flags = "SELECT bool_or(rolsuper OR rolcreatedb OR rolcreaterole) FROM pg_roles WHERE rolname LIKE 'wps%'"
    assert as_postgres(host, flags, "postgres") == "f"


def test_listens_on_the_cluster_address_only(host):
    listening = host.check_output("ss -Hltn sport = :5432").splitlines()
    local = {line.split()[3] for line in listening}
    address = remote("pg-web").check_output(f"getent ahostsv4 {DB_HOST}").split()[0]
    assert local == {f"{address}:5432"}


def test_passwords_are_stored_as_scram(host):
    stored = "SELECT count(*) FROM pg_authid WHERE rolname LIKE 'wps%' AND rolpassword LIKE 'SCRAM-SHA-256$%'"
    assert as_postgres(host, stored, "postgres") == "3"
    assert as_postgres(host, "SHOW password_encryption") == "scram-sha-256"


def test_settings_are_a_drop_in(host):
    dropin = host.file("/etc/postgresql/15/main/conf.d/50-pywps-gridengine.conf")
    assert dropin.user == "postgres"
    assert "Ansible managed" in dropin.content_string
    assert "listen_addresses" in dropin.content_string
    assert "ssl_cert_file" in dropin.content_string
    assert "Ansible managed" not in host.file("/etc/postgresql/15/main/postgresql.conf").content_string


def test_hba_has_no_plain_tcp_line(host):
    lines = [line.split() for line in host.file("/etc/postgresql/15/main/pg_hba.conf").content_string.splitlines()
             if line.strip() and not line.startswith("#")]
    assert {line[0] for line in lines} == {"local", "hostssl"}


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"postgresql_tls_cert": "/etc/hostname"}, "postgresql_tls_cert ("),
        ({"postgresql_tls_key": "/etc/hostname"}, "postgresql_tls_key ("),
        ({"postgresql_tls_cert": "/nonexistent/db.crt", "postgresql_tls_key": "/nonexistent/db.key",
          "postgresql_tls_ca_cert": "/nonexistent/ca.crt"}, "postgresql_tls_cert (/nonexistent/db.crt)"),
        ({"postgresql_web_user": "Web-Role"}, "postgresql_web_user (Web-Role)"),
        ({"postgresql_launcher_user": "wps_web"}, "postgresql_launcher_user (wps_web)"),
        ({"postgresql_tls_generate_dir": "db-tls"}, "postgresql_tls_generate_dir (db-tls)"),
    ],
)
def test_bad_settings_stop_the_role_before_it_changes_anything(host, variables, named):
    hba = "/etc/postgresql/15/main/pg_hba.conf"
    before = host.file(hba).sha256sum
    message = refusal(*run_playbook("db", variables), "pg-db")
    assert named in message, message
    assert host.file(hba).sha256sum == before
