"""The job list's paging (JobStore.find with limit, offset and a page cursor) and its indexes, on SQLite."""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from pywps_gridengine.inspect_jobs import main
from pywps_gridengine.jobs import JobRecord, JobStore, PageCursor

T0 = dt.datetime(2026, 3, 1, 8, 0, 0)
PROCESSES = ("sleep", "hello", "wordcount")
LIST_INDEXES = {"ix_t_gridengine_jobs_created", "ix_t_gridengine_jobs_state_created",
                "ix_t_gridengine_jobs_identifier_created"}


def store(tmp_path) -> JobStore:
    return JobStore(sa.create_engine(f"sqlite:///{tmp_path}/jobs.sqlite"), prefix="t_")


def fill(jobs: JobStore, count: int = 60, seed: int = 7) -> list[JobRecord]:
    """``count`` jobs of several processes and states; many share a creation time (ties the uuid breaks)."""
    rnd = random.Random(seed)
    for number in range(count):
        uuid = f"{rnd.randrange(16**8):08x}-{number:04d}"
        created = T0 + dt.timedelta(minutes=rnd.randrange(count // 4))  # about four jobs per minute
        jobs.create(uuid, rnd.choice(PROCESSES), now=created)
        state = rnd.choice(("accepted", "started", "succeeded", "succeeded", "failed"))
        if state != "accepted":
            jobs.transition(uuid, "started", now=created + dt.timedelta(seconds=1))
        if state in ("succeeded", "failed"):
            jobs.transition(uuid, state, now=created + dt.timedelta(seconds=2))
    return jobs.all()


def newest_first(rows: list[JobRecord], keep: Callable[[JobRecord], bool] = lambda job: True) -> list[str]:
    """The list's order, worked out here from the rows: created_at, then uuid, both descending."""
    return [job.uuid for job in sorted((job for job in rows if keep(job)),
                                       key=lambda job: (job.created_at, job.uuid), reverse=True)]


def pages_by_cursor(jobs: JobStore, size: int, **filters) -> list[list[str]]:
    pages, after = [], None
    while True:
        page = jobs.find(limit=size, after=after, **filters)
        if not page:
            return pages
        pages.append([job.uuid for job in page])
        after = PageCursor.of(page[-1])


def pages_by_offset(jobs: JobStore, size: int, **filters) -> list[list[str]]:
    pages = []
    while page := jobs.find(limit=size, offset=len(pages) * size, **filters):
        pages.append([job.uuid for job in page])
    return pages


def test_the_fill_has_ties_so_the_uuid_must_order_them(tmp_path):
    rows = fill(store(tmp_path))
    assert len({job.created_at for job in rows}) < len(rows) - 10


@pytest.mark.parametrize("paging", [pages_by_cursor, pages_by_offset])
@pytest.mark.parametrize("size", [1, 7, 60, 100])
def test_pages_put_together_are_the_whole_list_in_order(tmp_path, paging, size):
    jobs = store(tmp_path)
    rows = fill(jobs)
    expected = newest_first(rows)
    pages = paging(jobs, size)
    assert [uuid for page in pages for uuid in page] == expected  # no gap, no duplicate, same order
    assert all(len(page) == size for page in pages[:-1]) and 0 < len(pages[-1]) <= size
    assert [job.uuid for job in jobs.find()] == expected


@pytest.mark.parametrize("paging", [pages_by_cursor, pages_by_offset])
@pytest.mark.parametrize(("filters", "keep"), [
    ({"states": ["failed"]}, lambda job: job.state == "failed"),
    ({"states": ["accepted", "started"]}, lambda job: job.state in ("accepted", "started")),
    ({"identifier": "hello"}, lambda job: job.identifier == "hello"),
    ({"identifier": "hello", "states": ["succeeded"]}, lambda job: job.identifier == "hello"
     and job.state == "succeeded"),
    ({"since": T0 + dt.timedelta(minutes=5)}, lambda job: job.created_at >= T0 + dt.timedelta(minutes=5)),
    ({"identifier": "nosuch"}, lambda job: False),
])
def test_pages_of_a_filtered_list(tmp_path, paging, filters, keep):
    jobs = store(tmp_path)
    rows = fill(jobs)
    expected = newest_first(rows, keep)
    assert [uuid for page in paging(jobs, 4, **filters) for uuid in page] == expected
    assert filters.get("identifier") == "nosuch" or expected  # each case but the last lists something


def test_a_cursor_page_neither_repeats_nor_skips_when_the_table_changes_between_pages(tmp_path):
    jobs = store(tmp_path)
    expected = newest_first(fill(jobs))
    first = jobs.find(limit=10)
    cursor = PageCursor.of(first[-1])
    jobs.create("ffffffff-new", "sleep", now=T0 + dt.timedelta(days=1))  # a new job, newest of all
    assert [job.uuid for job in jobs.find(limit=10, after=cursor)] == expected[10:20]
    # An offset counts rows: the new job shifts its page by one, and the first page's last row comes again.
    assert [job.uuid for job in jobs.find(limit=10, offset=10)] == expected[9:19]
    with jobs.engine.begin() as conn:  # two jobs of the first page removed (the clean-up, say)
        conn.execute(sa.delete(jobs.table).where(jobs.table.c.uuid.in_([first[2].uuid, first[3].uuid])))
    assert [job.uuid for job in jobs.find(limit=10, after=cursor)] == expected[10:20]
    assert [job.uuid for job in jobs.find(limit=10, offset=10)] == expected[11:21]  # and now skips one


def test_cursor_and_offset_together_and_past_the_end(tmp_path):
    jobs = store(tmp_path)
    expected = newest_first(fill(jobs))
    anchor = jobs.find(limit=5)[-1]
    assert [job.uuid for job in jobs.find(after=PageCursor.of(anchor), offset=3, limit=4)] == expected[8:12]
    assert jobs.find(offset=len(expected)) == []
    assert jobs.find(after=PageCursor(T0 - dt.timedelta(days=1), "0")) == []
    assert [job.uuid for job in jobs.find(limit=0)] == []


@pytest.mark.parametrize("bad", [{"offset": -1}, {"limit": -5}])
def test_a_negative_offset_or_limit_is_refused(tmp_path, bad):
    with pytest.raises(ValueError, match="must not be negative"):
        store(tmp_path).find(**bad)


def plan(jobs: JobStore, **arguments) -> str:
    """SQLite's plan of the list query find() runs."""
    captured: list[tuple[str, object]] = []

    def keep(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001 - SQLAlchemy's hook
        if statement.lstrip().upper().startswith("SELECT") and "ORDER BY" in statement:
            captured.append((statement, parameters))

    sa.event.listen(jobs.engine, "before_cursor_execute", keep)
    try:
        jobs.find(**arguments)
    finally:
        sa.event.remove(jobs.engine, "before_cursor_execute", keep)
    statement, parameters = captured[-1]
    with jobs.engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
    return " | ".join(row[-1] for row in rows)


@pytest.mark.parametrize(("arguments", "index"), [
    ({"limit": 50}, "ix_t_gridengine_jobs_created"),
    ({"limit": 50, "offset": 20}, "ix_t_gridengine_jobs_created"),
    ({"limit": 50, "after": PageCursor(T0 + dt.timedelta(minutes=9), "8")}, "ix_t_gridengine_jobs_created"),
    ({"limit": 50, "states": ["failed"]}, "ix_t_gridengine_jobs_state_created"),
    ({"limit": 50, "identifier": "hello"}, "ix_t_gridengine_jobs_identifier_created"),
    ({"limit": 50, "identifier": "hello", "after": PageCursor(T0 + dt.timedelta(minutes=9), "8")},
     "ix_t_gridengine_jobs_identifier_created"),
])
def test_the_list_order_is_read_from_an_index_not_sorted(tmp_path, arguments, index):
    jobs = store(tmp_path)
    fill(jobs)
    with jobs.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    text = plan(jobs, **arguments)
    assert index in text, text
    assert "TEMP B-TREE" not in text, text  # SQLite's sort step: the index did not give the order


def test_an_existing_job_table_gets_the_list_indexes(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path}/old.sqlite")
    JobStore(engine, prefix="t_")
    with engine.begin() as conn:  # the table as a release before the list indexes left it
        for name in LIST_INDEXES:
            conn.exec_driver_sql(f"DROP INDEX {name}")
    assert not LIST_INDEXES & {ix["name"] for ix in sa.inspect(engine).get_indexes("t_gridengine_jobs")}
    JobStore(engine, prefix="t_")
    assert LIST_INDEXES <= {ix["name"] for ix in sa.inspect(engine).get_indexes("t_gridengine_jobs")}
    JobStore(engine, prefix="t_")  # a second start finds nothing to add


def test_a_role_that_may_not_create_an_index_goes_on_without_it(tmp_path, caplog):
    path = tmp_path / "jobs.sqlite"
    jobs = JobStore(sa.create_engine(f"sqlite:///{path}"), prefix="t_")
    jobs.create("u1", "sleep", now=T0)
    with jobs.engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_t_gridengine_jobs_created")
    jobs.engine.dispose()
    read_only = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    with caplog.at_level(logging.WARNING, logger="PYWPS"):
        reader = JobStore(read_only, prefix="t_")
    assert "index ix_t_gridengine_jobs_created of t_gridengine_jobs not created" in caplog.text
    assert [job.uuid for job in reader.find(limit=5)] == ["u1"]


def test_the_inspector_pages_with_offset(make_env, capsys):
    env = make_env(mode="scheduler")
    jobs = JobStore.for_config(env.config)
    expected = newest_first(fill(jobs, count=12))

    def listed(*args: str) -> tuple[list[str], str]:
        assert main(["--config", str(env.cfg), "list", *args]) == 0
        out, err = capsys.readouterr()
        return [line.split()[0] for line in out.splitlines()[1:]], err

    first, err = listed("--limit", "5")
    assert first == expected[:5] and "next page: --offset 5" in err
    second, err = listed("--limit", "5", "--offset", "5")
    assert second == expected[5:10] and "after the newest 5" in err and "next page: --offset 10" in err
    last, err = listed("--limit", "5", "--offset", "10")
    assert last == expected[10:] and err == ""
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(env.cfg), "list", "--offset", "-1"])
    assert exit_info.value.code == 2 and "--offset: -1 is not between 0 and" in capsys.readouterr().err
