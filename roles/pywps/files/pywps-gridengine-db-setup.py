"""Create or bring up to date the app's tables as the schema owner, and grant the launcher its columns.

Run by the pywps role on one web host, with the app's virtualenv, as the
deployment's one-shot step: the web tier's and the launcher's database roles
cannot create tables, so the app's own table creation (PyWPS's and
``JobStore``'s ``create_all``, a no-op once the tables exist) runs here as the
owner first. The web tier's rights on the owner's tables are default
privileges (role postgresql); the launcher's are column-level grants, made here
because they need the tables.

Environment: ``PWG_DB_URL`` (SQLAlchemy URL of the owner, no password),
``PGPASSWORD`` (libpq reads it), ``PWG_DB_PREFIX`` (table prefix),
``PWG_DB_LAUNCHER`` (the launcher's role). Prints ``{"changed": ...}``: whether
a table, a column, an index or a privilege changed, for Ansible's changed status.
"""

from __future__ import annotations

import json
import os
import sys

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

# Every privilege on the store's tables, as sorted text: the ACL arrays' order
# moves when a grant is revoked and made again, their content does not. Then
# every column, and every index on the tables with its definition (pg_indexes):
# an index's own name need not start with the prefix (the job list's are
# ix_<prefix>...), so it is found by its table, and a release that adds one
# (JobStore._add_missing_indexes) reports a change.
SNAPSHOT = sa.text("""
    SELECT c.relname, coalesce(a.attname, ''), acl::text
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
    LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    CROSS JOIN LATERAL unnest(coalesce(CASE WHEN a.attname IS NULL THEN c.relacl ELSE a.attacl END,
                                       '{}'::aclitem[])) AS acl
    WHERE c.relname LIKE :pattern
    UNION ALL
    SELECT c.relname, a.attname, 'column'
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE c.relname LIKE :pattern
    UNION ALL
    SELECT i.tablename::text, i.indexname::text, 'index ' || i.indexdef
    FROM pg_indexes i
    WHERE i.schemaname = current_schema() AND i.tablename LIKE :pattern
    ORDER BY 1, 2, 3
""")


def snapshot(engine: sa.Engine, prefix: str) -> list[tuple[str, str, str]]:
    pattern = prefix.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "%"
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(SNAPSHOT, {"pattern": pattern})]


def main() -> int:
    url = os.environ["PWG_DB_URL"]
    prefix = os.environ.get("PWG_DB_PREFIX", "pywps_")
    launcher = os.environ["PWG_DB_LAUNCHER"]
    from pywps_gridengine.jobs import JobStore

    engine = sa.create_engine(url, poolclass=NullPool)
    before = snapshot(engine, prefix)
    store = JobStore(engine, prefix)  # creates the missing tables, adds missing columns and indexes
    with engine.begin() as conn:
        for statement in store.launcher_grants(launcher):
            conn.execute(sa.text(statement))
    after = snapshot(engine, prefix)
    json.dump({"changed": before != after, "tables": sorted({row[0] for row in after})}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
