"""The clean-up deletes ended jobs' rows a chunk at a time, and scans for orphans with each root resolved once.

On SQLite and temporary directories, with the job store's own tables.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from pywps_gridengine.cleanup import Children, Cleanup
from pywps_gridengine.jobs import CleanupRows, Cutoff, JobStore, local_of, utcnow
from pywps_gridengine.paths import Roots, contained

DAY = 86400
PREFIX = "t_"


def uuid_of(number: int) -> str:
    return f"00000000-0000-4000-8000-{number:012d}"


class Site:
    """A database with the store's tables and the three directories the clean-up looks at."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path.resolve()
        self.outputs, self.workdir, self.logs = (self.root / name for name in ("outputs", "workdir", "logs"))
        for path in (self.outputs, self.workdir, self.logs):
            path.mkdir()
        self.roots = Roots(self.outputs, self.workdir, self.logs)
        self.engine = sa.create_engine(f"sqlite:///{self.root}/wps.sqlite")
        self.store = JobStore(self.engine, PREFIX)

    def ended_job(self, uuid: str, days_ago: float = 10, *, files: bool = True) -> None:
        """A succeeded Grid Engine job with its requests row, kept document, status document and work directory."""
        ended = utcnow() - dt.timedelta(days=days_ago)
        workdir = self.workdir / f"pywps_process_{uuid[-6:]}"
        with self.engine.begin() as conn:
            conn.execute(self.store.requests.insert().values(
                uuid=uuid, pid=1, operation="execute", version="1.0.0", time_start=local_of(ended),
                time_end=local_of(ended), identifier="sleep", status=2, percent_done=10))
        self.store.create(uuid, "sleep", workdir=str(workdir), now=ended)
        assert self.store.record(uuid, "succeeded", "done", 100, now=ended, document="<doc/>")
        if files:
            (self.outputs / f"{uuid}.xml").write_text("<doc/>")
            workdir.mkdir()
            (workdir / "job.dump").write_text("{}")

    def rows(self) -> dict[str, set[str]]:
        """Uuids in each table."""
        with self.engine.connect() as conn:
            return {name: set(conn.execute(sa.select(table.c.uuid)).scalars())
                    for name, table in (("requests", self.store.requests), ("jobs", self.store.table),
                                        ("documents", self.store.documents))}

    def run(self, store: JobStore | None = None, *, chunk: int = 3, days: int = 7) -> tuple[Cleanup, list[str]]:
        errors: list[str] = []
        cleanup = Cleanup(store or self.store, self.roots, days, out=lambda _: None, err=errors.append, chunk=chunk)
        cleanup.run()
        return cleanup, errors


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def statements(engine: sa.Engine, head: str) -> list[str]:
    """The statements starting with ``head`` the engine runs from now on."""
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute",
                    lambda _c, _cur, statement, *_: seen.append(statement) if statement.startswith(head) else None)
    return seen


# -- chunked deletion ---------------------------------------------------------------------------------


def test_jobs_across_chunk_boundaries_all_go_with_their_rows_and_files(site):
    uuids = [uuid_of(n) for n in range(7)]  # chunks of 3: 3 + 3 + 1
    for uuid in uuids:
        site.ended_job(uuid)
    site.ended_job(uuid_of(100), days_ago=1)  # within the last 7 days: kept
    deletes = statements(site.engine, f"DELETE FROM {PREFIX}requests")

    cleanup, errors = site.run(chunk=3)

    assert errors == [] and cleanup.summary.jobs == 7 and cleanup.summary.errors == 0
    assert site.rows() == {"requests": {uuid_of(100)}, "jobs": {uuid_of(100)}, "documents": {uuid_of(100)}}
    # One compare-and-delete per chunk, not per job (the pass's other DELETE is the other requests').
    assert len([s for s in deletes if f"{PREFIX}requests.uuid IN (" in s]) == 3
    assert sorted(p.name for p in site.outputs.iterdir()) == [f"{uuid_of(100)}.xml"]
    assert [p.name for p in site.workdir.iterdir()] == [f"pywps_process_{uuid_of(100)[-6:]}"]


def test_exactly_one_chunk_and_one_more(site):
    for n in range(4):
        site.ended_job(uuid_of(n))
    deletes = statements(site.engine, f"DELETE FROM {PREFIX}gridengine_jobs")

    cleanup, _ = site.run(chunk=4)
    assert cleanup.summary.jobs == 4 and len(deletes) == 1

    for n in range(4, 9):
        site.ended_job(uuid_of(n))
    cleanup, _ = site.run(chunk=4)
    assert cleanup.summary.jobs == 5 and len(deletes) == 3
    assert site.rows() == {"requests": set(), "jobs": set(), "documents": set()}


class Reopening(JobStore):
    """A store with a concurrent writer: after the clean-up has read a chunk's rows, it changes some of them."""

    def __init__(self, engine: sa.Engine, change: dict[str, str]) -> None:
        super().__init__(engine, PREFIX, create_table=False)
        self.change = change

    def cleanup_rows(self, uuids: Sequence[str]) -> list[CleanupRows]:
        rows = super().cleanup_rows(uuids)
        with self.engine.begin() as conn:  # another connection, committed before the chunk is deleted
            for uuid, what in self.change.items():
                if uuid not in uuids:
                    continue
                if what == "job":
                    conn.execute(self.table.update().where(self.table.c.uuid == uuid)
                                 .values(state="started", finished_at=None))
                elif what == "request":
                    conn.execute(self.requests.update().where(self.requests.c.uuid == uuid).values(status=2))
                else:  # ended, but just now: no longer before the cutoff
                    conn.execute(self.table.update().where(self.table.c.uuid == uuid)
                                 .values(finished_at=utcnow()))
        return rows


def test_rows_that_stopped_being_ended_after_the_listing_are_kept_whole(site):
    uuids = [uuid_of(n) for n in range(6)]
    for uuid in uuids:
        site.ended_job(uuid)
    reopened = {uuids[1]: "job", uuids[3]: "request", uuids[4]: "recent"}
    store = Reopening(site.engine, reopened)

    cleanup, errors = site.run(store, chunk=3)

    assert errors == []
    # Every row of a job one of whose rows changed stays, its kept document too: no half-deleted job.
    assert site.rows() == {"requests": set(reopened), "jobs": set(reopened), "documents": set(reopened)}
    assert cleanup.summary.jobs == 3 and cleanup.summary.kept_active == 3


def test_delete_ended_compares_each_row_at_delete_time(site):
    old, newer = uuid_of(1), uuid_of(2)
    site.ended_job(old, days_ago=10, files=False)
    site.ended_job(newer, days_ago=3, files=False)
    now = utcnow()

    assert site.store.delete_ended([old, newer], Cutoff.ago(dt.timedelta(days=7), now)) == {newer}
    assert site.rows()["jobs"] == {newer}
    assert site.store.delete_ended(newer, Cutoff.ago(dt.timedelta(days=1), now)) == set()  # one uuid, as before
    assert site.rows() == {"requests": set(), "jobs": set(), "documents": set()}
    assert site.store.delete_ended([], Cutoff(now)) == set()


def test_a_failing_chunk_is_reported_and_the_other_chunks_are_done(site):
    uuids = [uuid_of(n) for n in range(7)]
    for uuid in uuids:
        site.ended_job(uuid)
    # A real database error in the second chunk's transaction (uuids 3..5), after its requests rows went.
    with site.engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TRIGGER refuse BEFORE DELETE ON {PREFIX}gridengine_jobs "
                             f"WHEN OLD.uuid = '{uuids[4]}' BEGIN SELECT RAISE(ABORT, 'row is locked'); END")

    cleanup, errors = site.run(chunk=3)  # no exception out of the pass

    failed = set(uuids[3:6])
    assert site.rows() == {"requests": failed, "jobs": failed, "documents": failed}  # the chunk rolled back whole
    assert cleanup.summary.jobs == 4 and cleanup.summary.errors == 1
    assert len(errors) == 1 and "\n" not in errors[0]
    assert f"could not delete the rows of 3 job(s) ({uuids[3]} .. {uuids[5]})" in errors[0]
    assert "row is locked" in errors[0] and "Traceback" not in errors[0]
    # Files first, rows after: the failed chunk's files are gone, its rows remain for the next run.
    assert not any((site.outputs / f"{uuid}.xml").exists() for uuid in uuids)

    with site.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse")
    cleanup, errors = site.run(chunk=3)
    assert errors == [] and cleanup.summary.jobs == 3
    assert site.rows() == {"requests": set(), "jobs": set(), "documents": set()}


def test_a_chunk_whose_rows_cannot_be_read_is_reported_and_the_others_go_on(site):
    uuids = [uuid_of(n) for n in range(5)]
    for uuid in uuids:
        site.ended_job(uuid)

    class FailingRead(JobStore):
        """The database refuses the second read (a dropped connection, say): a real SQLAlchemy error."""

        reads = 0

        def cleanup_rows(self, chunk: Sequence[str]) -> list[CleanupRows]:
            FailingRead.reads += 1
            if FailingRead.reads == 2:
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("SELECT * FROM no_such_table")
            return super().cleanup_rows(chunk)

    cleanup, errors = site.run(FailingRead(site.engine, PREFIX, create_table=False), chunk=3)

    assert cleanup.summary.jobs == 3 and cleanup.summary.errors == 1
    assert len(errors) == 1 and "could not read 2 job(s)" in errors[0] and "no such table" in errors[0]
    assert site.rows()["jobs"] == set(uuids[3:])
    assert all((site.outputs / f"{uuid}.xml").exists() for uuid in uuids[3:])  # nothing of it touched


def test_dry_run_counts_chunks_and_deletes_nothing(site):
    for n in range(5):
        site.ended_job(uuid_of(n))
    errors: list[str] = []
    cleanup = Cleanup(site.store, site.roots, 7, dry_run=True, out=lambda _: None, err=errors.append, chunk=2)
    assert cleanup.run().jobs == 5
    assert len(site.rows()["jobs"]) == 5 and len(list(site.outputs.iterdir())) == 5


# -- orphan scan: each root resolved once, containment kept ---------------------------------------------------


def backdate(path: Path, days: float = 30) -> None:
    stamp = time.time() - days * DAY
    os.utime(path, (stamp, stamp), follow_symlinks=False)


def test_children_agrees_with_contained(tmp_path):
    root = tmp_path / "workdir"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "escape").symlink_to(tmp_path / "outside")
    (root / "sub").mkdir()
    (tmp_path / "alias").symlink_to(root)
    candidates = [root / "pywps_process_a", "/etc", "../..", "pywps_process_a", str(root), f"{root}/",
                  f"{root}/pywps_process_a/../../outside", f"{root}/..", root / "a" / "b", root / "escape" / "x",
                  root / "escape", f"{root}/sub/../pywps_process_b", tmp_path / "alias" / "pywps_process_c",
                  tmp_path / "outside" / "pywps_process_d", f"{root}/x\0y", ""]
    for resolved_root in (root, root.resolve()):
        children = Children(resolved_root)
        for candidate in candidates:
            expected = contained(resolved_root, candidate)
            assert children.child(candidate) == expected, candidate
            assert children.name(os.fspath(candidate)) == (expected.name if expected else None), candidate
    assert Children(root).child(root / "escape" / "x") is None  # the parent resolves outside


def test_children_checks_every_path_to_delete_afresh(tmp_path):
    """Only a protecting answer is remembered: a parent link turned to point outside is seen at once."""
    root, outside = tmp_path / "workdir", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (tmp_path / "link").symlink_to(root)
    children = Children(root)
    assert children.child(tmp_path / "link" / "pywps_process_a") == root / "pywps_process_a"
    (tmp_path / "link").unlink()
    (tmp_path / "link").symlink_to(outside)
    assert children.child(tmp_path / "link" / "pywps_process_a") is None


def test_orphan_scan_never_follows_a_link_out_of_its_root(site, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    (outside / "pywps_process_far").mkdir()
    (outside / "target.xml").write_text("keep")
    orphan = "11111111-2222-4333-8444-555555555555"
    # In workdir: a link named like a work directory pointing outside, and a job row whose
    # work directory is spelled through a link in workdir that leads outside.
    (site.workdir / "pywps_process_link").symlink_to(outside)
    (site.workdir / "escape").symlink_to(outside)
    # In outputpath: an orphan status document that is a link to a file outside, and an
    # output directory that is a link to a directory outside.
    (site.outputs / f"{orphan}.xml").symlink_to(outside / "target.xml")
    (site.outputs / orphan).symlink_to(outside)
    # In log_dir: a log that is a link to a file outside.
    (site.logs / f"{orphan}.err").symlink_to(outside / "precious")
    # An unreferenced, old work directory really inside: an orphan.
    (site.workdir / "pywps_process_gone").mkdir()
    for path in [*site.workdir.iterdir(), *site.outputs.iterdir(), *site.logs.iterdir(), outside,
                 *outside.iterdir()]:
        backdate(path)
    running = uuid_of(7)
    site.store.create(running, "sleep", workdir=str(site.workdir / "escape" / "pywps_process_far"))

    cleanup, errors = site.run()

    assert errors == []
    assert (outside / "precious").read_text() == "keep" and (outside / "target.xml").read_text() == "keep"
    assert (outside / "pywps_process_far").is_dir()
    # The file links are removed as links; the directory links are not entries the scan looks at.
    assert not os.path.lexists(site.outputs / f"{orphan}.xml") and not os.path.lexists(site.logs / f"{orphan}.err")
    assert (site.outputs / orphan).is_symlink() and (site.workdir / "pywps_process_link").is_symlink()
    assert not (site.workdir / "pywps_process_gone").exists()
    assert cleanup.summary.orphans == 3


def test_work_directory_recorded_through_an_alias_of_the_root_is_not_an_orphan(site, tmp_path):
    """A row may spell its work directory through a link to ``workdir``: it is still referenced."""
    (tmp_path / "alias").symlink_to(site.workdir)
    referenced, unreferenced = site.workdir / "pywps_process_kept", site.workdir / "pywps_process_lost"
    for path in (referenced, unreferenced):
        path.mkdir()
        backdate(path)
    site.store.create(uuid_of(1), "sleep", workdir=str(tmp_path / "alias" / referenced.name))
    site.store.create(uuid_of(2), "sleep", workdir=f"{site.workdir}/sub/../{referenced.name}x")

    cleanup, errors = site.run()

    assert errors == [] and referenced.is_dir() and not unreferenced.exists()
    assert cleanup.summary.orphans == 1


def test_ended_job_work_directory_through_a_link_out_of_the_root_is_refused(site, tmp_path):
    outside = tmp_path / "outside"
    (outside / "pywps_process_x").mkdir(parents=True)
    (outside / "pywps_process_x" / "data").write_text("keep")
    (site.workdir / "escape").symlink_to(outside)
    uuid = uuid_of(3)
    site.ended_job(uuid, files=False)
    with site.engine.begin() as conn:
        conn.execute(site.store.table.update().where(site.store.table.c.uuid == uuid)
                     .values(workdir=str(site.workdir / "escape" / "pywps_process_x")))

    cleanup, errors = site.run()

    assert (outside / "pywps_process_x" / "data").read_text() == "keep"
    assert len(errors) == 1 and "refused work directory" in errors[0]
    assert cleanup.summary.refused == 1 and cleanup.summary.jobs == 1  # the rest of the job went
