"""The clean-up's store keeps one connection for a whole pass (cleanup.open_store), on SQLite."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from pywps_gridengine.cleanup import Cleanup, Config, open_store
from pywps_gridengine.jobs import JobStore, local_of, utcnow
from pywps_gridengine.paths import Roots


def test_a_pass_deleting_many_jobs_opens_one_connection(tmp_path):
    database = f"sqlite:///{tmp_path}/wps.sqlite"
    for name in ("outputs", "workdir"):
        (tmp_path / name).mkdir()
    writer = JobStore(sa.create_engine(database), prefix="t_")
    ended = utcnow() - dt.timedelta(days=10)
    uuids = [f"00000000-0000-4000-8000-{number:012d}" for number in range(30)]
    for uuid in uuids:
        writer.create(uuid, "sleep", now=ended)
        assert writer.transition(uuid, "succeeded", "done", now=ended)
    with writer.engine.begin() as conn:
        conn.execute(writer.requests.insert(), [
            {"uuid": uuid, "pid": 1, "operation": "execute", "version": "1.0.0", "time_start": local_of(ended),
             "time_end": local_of(ended), "identifier": "sleep", "status": 4, "percent_done": 100}
            for uuid in uuids])
    writer.engine.dispose()

    roots = Roots(tmp_path.resolve() / "outputs", tmp_path.resolve() / "workdir", None)
    store = open_store(Config(roots, database, "t_"))
    connects = []
    sa.event.listen(store.engine, "connect", lambda *_: connects.append(1))
    summary = Cleanup(store, roots, 7, out=lambda _: None, err=lambda _: None).run()
    assert summary.jobs == len(uuids) and summary.errors == 0
    assert store.all() == []
    # The store's first connection (opened to look at the tables) serves the whole pass; without a
    # pool each job's compare-and-delete, and every other query, opened a connection of its own.
    assert len(connects) == 0

