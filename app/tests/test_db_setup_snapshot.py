"""The pywps role's one-shot table setup (roles/pywps/files/pywps-gridengine-db-setup.py) on a real PostgreSQL.

Its ``changed`` answer comes from a snapshot of PostgreSQL's catalogs, so it is
tested against a throw-away PostgreSQL server (``postgres`` in conftest.py).
What it guards: a deployment that only adds an index (the job list's, named
``ix_<prefix>...``) reports changed, and one that changes nothing reports
unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "pywps" / "files" / "pywps-gridengine-db-setup.py"


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
