"""Print the SQL of the deployment's one-shot step for this scenario, from the app's own code.

The postgresql scenario has no app on its hosts: the pywps role's step (the
app's table creation as the schema owner, then the launcher's grants) is
replayed by converge.yml as SQL through psql, made here from the app's table
definitions and ``JobStore.launcher_grants``, so the tests check the real
tables and the real grants.
"""

import sys

import sqlalchemy as sa
from pywps_gridengine.jobs import JobStore
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable


def main() -> int:
    store = JobStore(sa.create_engine("sqlite://"), "pywps_", create_table=False)
    dialect = postgresql.dialect()
    statements = []
    for table in (store.requests, store.stored, store.table, store.documents):
        statements.append(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)).strip())
        statements += [str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect))
                       for index in table.indexes]
    statements += store.launcher_grants(sys.argv[1])
    print("BEGIN;")
    print(";\n".join(statements) + ";")
    print("COMMIT;")
    return 0


if __name__ == "__main__":
    sys.exit(main())
