"""PyWPS's database sessions come from a pool per process (compat.install_pooled_sessions), on a real PostgreSQL.

What a pool changes is only visible on a server: which backend serves each
session, what happens to a connection the server closed, and what a forked
child may do with its parent's connections. SQLite keeps PyWPS's own engine.
"""

from __future__ import annotations

import gc
import os

import pytest
import sqlalchemy as sa
from pywps import configuration, dblog

from pywps_gridengine import compat
from pywps_gridengine.config import give_pywps_database

BACKEND = sa.text("SELECT pg_backend_pid()")


@pytest.fixture
def pooled(postgres):
    """PyWPS configured for the throw-away server; the pools built for it are dropped afterwards."""
    configuration.load_configuration()
    before = configuration.get_config_value("logging", "database")
    give_pywps_database(postgres)
    yield postgres
    for key in [k for k in compat._SESSION_MAKERS if k[1] == postgres]:
        compat._SESSION_MAKERS.pop(key).kw["bind"].dispose()
    configuration.CONFIG.set("logging", "database", before.replace("%", "%%"))


def backend() -> int:
    session = dblog.get_session()
    try:
        return int(session.execute(BACKEND).scalar_one())
    finally:
        session.close()


def test_pywps_get_session_is_the_pooled_one():
    assert dblog.get_session is not compat._PYWPS_GET_SESSION
    assert dblog.get_session.__wrapped__ is compat._PYWPS_GET_SESSION


def test_sessions_share_one_connection_where_pywps_opened_one_each(pooled):
    assert len({backend() for _ in range(10)}) == 1
    # PyWPS's own engine (NullPool): a new server process for every session.
    pids = set()
    for _ in range(3):
        session = compat._PYWPS_GET_SESSION()
        try:
            pids.add(int(session.execute(BACKEND).scalar_one()))
        finally:
            session.close()
    assert len(pids) == 3


def test_a_connection_the_server_closed_is_replaced_not_raised(pooled):
    first = backend()
    killer = sa.create_engine(pooled, poolclass=sa.pool.NullPool)
    with killer.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": first}).scalar_one() is True
    killer.dispose()
    second = backend()
    assert second != first


def test_the_job_store_shares_the_pooled_engine(pooled):
    from pywps_gridengine.jobs import JobStore

    session = dblog.get_session()
    try:
        assert session.get_bind().pool.__class__ is sa.pool.QueuePool
    finally:
        session.close()
    store = JobStore.for_config(type("Cfg", (), {"database": pooled, "prefix": "pooltest_"})())
    assert store.engine.pool.__class__ is sa.pool.QueuePool


def test_a_forked_child_builds_its_own_pool_and_leaves_the_parents_connection_alive(pooled):
    parent = backend()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's result goes through the pipe
        code = 1
        try:
            mine = backend()
            gc.collect()  # the parent's pooled connection, unused here, stays open
            os.write(write, str(mine).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        mine = int(pipe.read() or 0)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert mine not in (0, parent)
    assert backend() == parent


def test_sqlite_keeps_pywps_engine(make_env):
    env = make_env()
    env.config  # noqa: B018 - loads the configuration (SQLite)
    session = dblog.get_session()
    try:
        assert session.get_bind().url.get_backend_name() == "sqlite"
    finally:
        session.close()
    assert not [k for k in compat._SESSION_MAKERS if k[1].startswith("sqlite")]
