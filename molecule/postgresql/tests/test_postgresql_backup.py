"""The nightly backup: a dump is complete and restorable, a failed night leaves the
older dumps and fails the unit, retention keeps the newest N (and the young),
the copy target gets each dump, bad settings stop the role before it changes
anything. Runs after test_postgresql.py (files run in name order): the restore
test drops and recreates the service's database."""

import pathlib
import re
import shlex
import time
import uuid

import pytest
import yaml
from pwgtest import refusal, run_playbook, spec

VALUES = yaml.safe_load(
    (pathlib.Path(__file__).parent.parent / "inventory" / "group_vars" / "all" / "test.yml").read_text()
)
KEEP = VALUES["postgresql_backup_keep"]
KEEP_DAYS = VALUES["postgresql_backup_keep_days"]
COPY_TO = VALUES["postgresql_backup_copy_to"]
BACKUPS = "/var/backups/postgresql"
STATE = "/var/lib/postgresql-backup/postgresql-backup.prom"
UNIT = "postgresql-backup.service"
DROPIN_DIR = f"/run/systemd/system/{UNIT}.d"
# systemd-analyze security's exposure of the sandboxed unit: 0.4 when written
# (1.3 with an ssh copy target, which needs the network; 9.2 for the unit
# before the sandbox). Fail if it creeps back up.
MAX_EXPOSURE = 0.5
testinfra_hosts = [spec("pg-db")]


def as_postgres(host, sql: str, dbname: str = "wps") -> str:
    return host.check_output(f"runuser -u postgres -- psql -X -At -v ON_ERROR_STOP=1 -d {dbname} -c {shlex.quote(sql)}")


def dumps(host, database: str = "wps") -> list[str]:
    """The complete dumps of DATABASE, oldest first (their names sort by time)."""
    out = host.check_output(f"find {BACKUPS} -maxdepth 1 -name '{database}-*.dump' -printf '%f\\n' | sort")
    return out.split()


def run_backup(host):
    """Start the backup service and wait for it; the result of `systemctl start`."""
    return host.run(f"systemctl start {UNIT}")


def metric(host, name: str, database: str = "wps") -> float:
    text = host.file(STATE).content_string
    found = re.search(rf'^{name}\{{database="{database}"\}} (\S+)$', text, re.MULTILINE)
    assert found, f"{name} for {database} not in {STATE}:\n{text}"
    return float(found.group(1))


def plant(host, names: list[str]) -> None:
    """Dumps with the given names (copies of a real one), as earlier nights left them."""
    newest = dumps(host)[-1]
    for name in names:
        host.check_output(f"runuser -u postgres -- cp {BACKUPS}/{newest} {BACKUPS}/{name}")


def days_ago(days: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - days * 86400))


@pytest.fixture()
def clean(host):
    """Start from no wps dumps but one fresh one; leave the unit not failed and without test drop-ins."""
    host.run(f"rm -rf {DROPIN_DIR}; systemctl daemon-reload; systemctl reset-failed {UNIT}")
    host.check_output(f"find {BACKUPS} -maxdepth 1 -name 'wps-*.dump' -delete")
    time.sleep(1.1)  # one dump per second: names carry the second
    assert run_backup(host).rc == 0
    yield
    host.run(f"rm -rf {DROPIN_DIR}; systemctl daemon-reload; systemctl reset-failed {UNIT}")


def test_timer_is_enabled_and_waiting(host):
    timer = host.service("postgresql-backup.timer")
    assert timer.is_enabled
    assert timer.is_running


def test_backup_survives_dropping_the_database_and_restores(host):
    """Rows inserted, dumped by the service, the database dropped, the README's restore: the rows are back."""
    token = uuid.uuid4().hex
    as_postgres(host, "CREATE TABLE IF NOT EXISTS backup_check (token text PRIMARY KEY)")
    as_postgres(host, "ALTER TABLE backup_check OWNER TO wps")
    as_postgres(host, f"INSERT INTO backup_check SELECT '{token}-' || n FROM generate_series(1, 500) AS n")
    time.sleep(1.1)
    result = run_backup(host)
    assert result.rc == 0, host.run(f"journalctl -u {UNIT} -n 20 --no-pager").stdout
    assert host.run(f"systemctl is-failed --quiet {UNIT}").rc != 0
    # The server still takes new connections: the unit, which runs as postgres, must not
    # take the server's shared memory with it when it ends (systemd's RemoveIPC= would).
    assert as_postgres(host, "SELECT 1", "postgres") == "1"
    newest = f"{BACKUPS}/{dumps(host)[-1]}"
    assert host.file(newest).user == "postgres"
    assert host.file(newest).mode == 0o600
    assert not host.run(f"find {BACKUPS} -name '*.partial'").stdout.strip()

    # The restore README.md documents ("Operating the cluster").
    host.check_output("runuser -u postgres -- dropdb wps")
    assert as_postgres(host, "SELECT count(*) FROM pg_database WHERE datname = 'wps'", "postgres") == "0"
    host.check_output(f"runuser -u postgres -- pg_restore --list {newest}")
    host.check_output(f"runuser -u postgres -- pg_restore --create --exit-on-error -d postgres {newest}")

    assert as_postgres(host, f"SELECT count(*) FROM backup_check WHERE token LIKE '{token}-%'") == "500"
    assert as_postgres(host, "SELECT datdba::regrole FROM pg_database WHERE datname = 'wps'", "postgres") == "wps"
    assert as_postgres(host, "SELECT tableowner FROM pg_tables WHERE tablename = 'backup_check'") == "wps"
    assert as_postgres(host, "SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'public'") == "wps"


def test_state_file_has_the_time_of_the_newest_dump(host, clean):
    state = host.file(STATE)
    assert state.mode == 0o644
    newest = dumps(host)[-1]
    taken = time.mktime(time.strptime(newest[len("wps-"):-len(".dump")], "%Y%m%dT%H%M%SZ")) - time.timezone
    assert metric(host, "postgresql_backup_last_success_timestamp_seconds") == taken
    assert abs(taken - time.time()) < 120
    assert metric(host, "postgresql_backup_last_run_success") == 1
    assert metric(host, "postgresql_backup_dumps") == len(dumps(host))


def test_copy_target_gets_each_dump(host, clean):
    newest = dumps(host)[-1]
    copied = host.file(f"{COPY_TO}/{newest}")
    assert copied.exists
    assert copied.sha256sum == host.file(f"{BACKUPS}/{newest}").sha256sum
    assert metric(host, "postgresql_backup_last_run_copy_success") == 1


def test_failed_dump_keeps_every_older_dump_and_fails_the_unit(host, clean):
    """pg_dump cannot reach the server (a drop-in points libpq elsewhere): nothing is pruned."""
    old = [f"wps-{days_ago(d)}.dump" for d in (30, 29, 28, 27, 26)]  # beyond KEEP, older than KEEP_DAYS
    plant(host, old)
    before = dumps(host)
    last_success = metric(host, "postgresql_backup_last_success_timestamp_seconds")
    host.check_output(f"mkdir -p {DROPIN_DIR}")
    host.check_output(f"printf '[Service]\\nEnvironment=PGHOST=/nonexistent\\n' > {DROPIN_DIR}/fail.conf")
    host.check_output("systemctl daemon-reload")
    time.sleep(1.1)

    result = run_backup(host)

    assert result.rc != 0
    assert host.run(f"systemctl is-failed --quiet {UNIT}").rc == 0
    assert UNIT in host.check_output("systemctl list-units --failed --plain --no-legend")
    journal = host.check_output(f"journalctl -u {UNIT} -n 20 --no-pager")
    assert "pg_dump of wps failed" in journal
    assert dumps(host) == before, "a failed night removed dumps"
    assert not host.run(f"find {BACKUPS} -name '*.partial'").stdout.strip()
    assert metric(host, "postgresql_backup_last_run_success") == 0
    assert metric(host, "postgresql_backup_last_success_timestamp_seconds") == last_success


def test_retention_keeps_the_young_beyond_the_newest_n(host, clean):
    """Dumps younger than KEEP_DAYS stay even beyond the newest KEEP; older ones beyond KEEP go."""
    young = [f"wps-{days_ago(KEEP_DAYS * (n + 1) / (KEEP + 2))}.dump" for n in range(KEEP)]
    old = [f"wps-{days_ago(d)}.dump" for d in (40, 39, 38, 37, 36)]
    plant(host, [*young, *old])
    fresh = dumps(host)[-1]
    time.sleep(1.1)
    assert run_backup(host).rc == 0
    after = dumps(host)
    assert len(after) == KEEP + 2, after  # this run's, the fixture's, and every young one
    assert set(after) >= {fresh, *young}
    assert not set(old) & set(after)


def test_retention_keeps_exactly_the_newest_n_when_all_are_old(host, clean):
    """More than KEEP dumps, all but the fresh one older than KEEP_DAYS: exactly the newest KEEP remain."""
    old = [f"wps-{days_ago(d)}.dump" for d in (50, 49, 48, 47, 46, 45)]
    plant(host, old)
    fresh = dumps(host)[-1]
    time.sleep(1.1)
    assert run_backup(host).rc == 0
    after = dumps(host)
    assert len(after) == KEEP
    assert after == sorted([*old, fresh, after[-1]])[-KEEP:]
    assert fresh in after


def test_sandbox_exposure_is_low(host):
    """systemd-analyze security rates the unit's sandbox; it must stay at or below MAX_EXPOSURE."""
    out = host.check_output(f"systemd-analyze security --no-pager {UNIT}")
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert found, out
    assert float(found.group(1)) <= MAX_EXPOSURE, out


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"postgresql_backup_keep": 0}, "postgresql_backup_keep"),
        ({"postgresql_backup_keep_days": -1}, "postgresql_backup_keep_days"),
        ({"postgresql_backup_copy_to": "backups/pg"}, "postgresql_backup_copy_to"),
        ({"postgresql_backup_copy_to": "host name:/x"}, "postgresql_backup_copy_to"),
        ({"postgresql_backup_dir": "var/backups"}, "postgresql_backup_dir"),
    ],
)
def test_bad_backup_settings_stop_the_role_before_it_changes_anything(host, variables, named):
    unit = f"/etc/systemd/system/{UNIT}"
    before = host.file(unit).sha256sum
    message = refusal(*run_playbook("db", variables), "pg-db")
    assert f"{named} (" in message, message
    assert host.file(unit).sha256sum == before
