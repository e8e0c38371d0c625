"""The pywps role's one-shot table setup (roles/pywps/files/pywps-gridengine-db-setup.py) on a real PostgreSQL.

Its ``changed`` answer comes from a snapshot of PostgreSQL's catalogs, so it is
tested against a throw-away PostgreSQL server (the server binaries of this
machine, ``initdb``/``pg_ctl``, a Unix socket in a temporary directory, no TCP):
skipped where there is none. What it guards: a deployment that only adds an
index (the job list's, named ``ix_<prefix>...``) reports changed, and one that
changes nothing reports unchanged.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "pywps" / "files" / "pywps-gridengine-db-setup.py"


def _server_bin() -> Path | None:
    """The directory of this machine's PostgreSQL server programs, if any."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out and Path(out, "initdb").exists() and Path(out, "pg_ctl").exists():
            return Path(out)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    return None


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A throw-away PostgreSQL server (as the ``postgres`` user when the tests run as root): its SQLAlchemy URL."""
    bindir = _server_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server programs (initdb, pg_ctl) on this machine")
    try:
        import psycopg2  # noqa: F401  (the driver the role's venv uses)
    except ImportError:
        pytest.skip("psycopg2 is not installed")
    run_as: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="pwg-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base)
            pytest.skip("running as root and there is no postgres user to run the server as")
        runuser = shutil.which("runuser")
        if runuser is None:
            shutil.rmtree(base)
            pytest.skip("running as root without runuser")
        os.chown(base, owner.pw_uid, owner.pw_gid)
        run_as = [runuser, "-u", "postgres", "--"]
    data, log = base / "data", base / "server.log"
    started = False
    try:
        subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                        "--no-sync"], capture_output=True, text=True, check=True, timeout=120)
        options = f"-c listen_addresses='' -c unix_socket_directories={base} -c fsync=off -p 5432"
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w",
                        "-t", "60", "start"], capture_output=True, text=True, check=True, timeout=90)
        started = True
        yield f"postgresql+psycopg2://postgres@/postgres?host={base}&port=5432"
    except subprocess.CalledProcessError as e:
        pytest.skip(f"throw-away PostgreSQL did not start: {(e.stderr or e.stdout).strip()[-300:]}")
    finally:
        if started:
            subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, check=False, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def setup(url: str, prefix: str) -> dict:
    env = dict(os.environ, PWG_DB_URL=url, PWG_DB_PREFIX=prefix, PWG_DB_LAUNCHER="pwg_launcher")
    done = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_an_added_index_is_a_change_and_nothing_new_is_none(postgres):
    engine = sa.create_engine(postgres, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE ROLE pwg_launcher")
    prefix = "snap_"

    first = setup(postgres, prefix)
    assert first["changed"] is True and f"{prefix}gridengine_jobs" in first["tables"]
    assert setup(postgres, prefix)["changed"] is False

    # A database a release before the job list's indexes left: the next deployment adds them.
    index = f"ix_{prefix}gridengine_jobs_created"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP INDEX {index}")
    assert setup(postgres, prefix)["changed"] is True
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM pg_indexes WHERE indexname = %(n)s",
                                    {"n": index}).scalar_one() == 1
    assert setup(postgres, prefix)["changed"] is False
    engine.dispose()
