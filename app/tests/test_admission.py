"""Admission control at the front door (:mod:`pywps_gridengine.admission`).

Outages are real here: a PostgreSQL URL nobody listens on, a TCP listener that
never answers (libpq's connect timeout), a FIFO without a reader where the
shared-tree probe writes (a write that blocks in the kernel, as on a hard NFS
mount whose server is away), and the real DRMAA submitter on a host without
Grid Engine. Each outage test measures the time to the 503 and bounds it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from corpus import admission as corpus_admission
from pywps.tests import client_for
from wpstest import NS, app_client, xml

from pywps_gridengine import admission, compat
from pywps_gridengine.config import Admission as AdmissionSettings
from pywps_gridengine.config import ConfigError, load_admission, with_connect_timeout
from pywps_gridengine.jobs import JobStore, OverCap
from pywps_gridengine.scheduler import DrmaaSubmitter, GridEngineScheduler
from pywps_gridengine.wsgi import create_service

UNREACHABLE = "postgresql+psycopg2://u:p@127.0.0.1:1/db"  # SQLAlchemy 2.1 defaults to psycopg 3
BOUND = 5.0  # seconds: the most an Execute may wait for its 503 (issue 10)
TIMES: dict[str, float] = {}


def execute_query(identifier: str = "sleep", datainputs: str = "delay=0", asynchronous: bool = True) -> dict[str, str]:
    query = {"service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": identifier,
             "datainputs": datainputs}
    if asynchronous:
        query.update(storeExecuteResponse="true", status="true")
    return query


def exception_of(resp) -> tuple[str, str]:
    report = xml(resp.data)
    exception = report.find("ows:Exception", NS)
    assert exception is not None, resp.data
    return exception.get("exceptionCode"), " ".join(exception.itertext()).strip()


def assert_busy(resp, started: float, name: str) -> None:
    """A 503 ServerBusy ExceptionReport with Retry-After, within the bound; the time is recorded."""
    elapsed = time.monotonic() - started
    TIMES[name] = elapsed
    print(f"time to 503, {name}: {elapsed:.2f} s")
    assert resp.status_code == 503, resp.data
    assert exception_of(resp)[0] == "ServerBusy"
    assert int(resp.headers["Retry-After"]) > 0
    assert elapsed < BOUND, f"{name}: {elapsed:.2f} s"


def nothing_left(env) -> None:
    """No work directory, status document or output of a refused job on the shared tree."""
    leftovers = [p.name for p in (*env.workdir.iterdir(), *env.outputs.iterdir())
                 if p.name != admission.SharedTreeProbe.FILENAME]
    assert leftovers == []


def request_rows(env) -> list[tuple[str, str]]:
    engine = sa.create_engine(f"sqlite:///{env.root}/wps.sqlite")
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("pywps_requests"):
            return []
        return [tuple(row) for row in conn.execute(sa.text("SELECT uuid, operation FROM pywps_requests"))]


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word: a database host that hangs.

    Each connection is dropped after 15 s, so a missing timeout fails the test instead of hanging it.
    """
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        held: list[tuple[float, socket.socket]] = []
        while not stop.is_set():
            try:
                held.append((time.monotonic(), server.accept()[0]))
            except OSError:
                pass
            for accepted_at, conn in list(held):
                if time.monotonic() - accepted_at > 15:
                    conn.close()
                    held.remove((accepted_at, conn))
        for _, conn in held:
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


# -- discovery writes no row, and answers with the database down ----------------------------------


def test_discovery_writes_no_row_execute_does(make_env):
    env = make_env(mode="default")
    client = app_client(env.config)
    assert client.get("/wps?service=WPS&request=GetCapabilities").status_code == 200
    assert client.get("/wps?service=WPS&version=1.0.0&request=DescribeProcess&identifier=all").status_code == 200
    assert request_rows(env) == []
    resp = client.get("/wps", query_string=execute_query("hello", "name=Friday", asynchronous=False))
    assert resp.status_code == 200, resp.data
    assert [operation for _, operation in request_rows(env)] == ["execute"]


@pytest.mark.parametrize("mode", ["default", "scheduler"])
def test_discovery_answers_with_the_database_down(make_env, mode):
    env = make_env(mode=mode, extra="[gridengine]\nmax_active_jobs = 5\n")
    env.cfg.write_text(env.cfg.read_text().replace(f"sqlite:///{env.root}/wps.sqlite", UNREACHABLE))
    client = app_client(env.config)
    for query in ("service=WPS&request=GetCapabilities",
                  "service=WPS&version=1.0.0&request=DescribeProcess&identifier=sleep,hello"):
        started = time.monotonic()
        resp = client.get(f"/wps?{query}")
        assert resp.status_code == 200, resp.data
        assert time.monotonic() - started < 1.0


# -- Execute with the database down: 503 within the bound, nothing left --------------------------


def assert_database_down_answer(env, client, asynchronous: bool, name: str) -> None:
    """An Execute answered 503 ServerBusy for the database (Retry-After 45, the tests' setting), nothing left."""
    started = time.monotonic()
    resp = client.get("/wps", query_string=execute_query(asynchronous=asynchronous))
    assert_busy(resp, started, name)
    assert resp.headers["Retry-After"] == "45"
    assert "job database does not answer" in exception_of(resp)[1]
    nothing_left(env)


@pytest.mark.parametrize(("mode", "asynchronous"), [("default", False), ("default", True), ("scheduler", True)])
def test_execute_with_the_database_refusing_connections(make_env, mode, asynchronous):
    env = make_env(mode=mode, extra="[gridengine]\nmax_active_jobs = 5\nretry_after = 45\n")
    env.cfg.write_text(env.cfg.read_text().replace(f"sqlite:///{env.root}/wps.sqlite", UNREACHABLE))
    assert_database_down_answer(env, app_client(env.config), asynchronous,
                                f"database refusing connections ({mode}, {'async' if asynchronous else 'sync'})")


@pytest.mark.parametrize("asynchronous", [False, True])
def test_execute_when_the_database_stops_answering_after_admission(make_env, monkeypatch, asynchronous):
    """The database answers admission and the request row, then fails PyWPS's own query (its
    maxparallel count): a 503 ServerBusy as when it is down from the start, not a 500, nothing left."""
    from pywps import dblog

    env = make_env(mode="default", extra="[gridengine]\nretry_after = 45\n")
    client = app_client(env.config)
    count = dblog.get_process_counts

    def table_gone() -> tuple[int, int]:
        # The database really fails the query: the table PyWPS counts in is gone (as with a server
        # that went away, SQLAlchemy raises an OperationalError from the driver).
        with sa.create_engine(f"sqlite:///{env.root}/wps.sqlite").begin() as conn:
            conn.execute(sa.text("DROP TABLE pywps_requests"))
        return count()

    monkeypatch.setattr(dblog, "get_process_counts", table_gone)
    assert_database_down_answer(env, client, asynchronous,
                                f"database gone after admission ({'async' if asynchronous else 'sync'})")


def test_execute_with_a_database_host_that_does_not_answer(make_env, silent_listener):
    """libpq's connect_timeout, added to the URL, bounds the wait; without it this would hang for minutes."""
    env = make_env(mode="scheduler")  # the default db_connect_timeout, 3 s
    url = f"postgresql+psycopg2://u:p@127.0.0.1:{silent_listener}/db"
    env.cfg.write_text(env.cfg.read_text().replace(f"sqlite:///{env.root}/wps.sqlite", url))
    assert env.config.database == f"{url}?connect_timeout=3"
    client = app_client(env.config)
    started = time.monotonic()
    resp = client.get("/wps", query_string=execute_query())
    assert_busy(resp, started, "database host silent (default connect_timeout 3 s)")
    # One connection attempt, ended by the timeout (not refused): the whole wait is the timeout's.
    assert 2.5 <= TIMES["database host silent (default connect_timeout 3 s)"] < 4
    nothing_left(env)


def test_connect_timeout_is_added_to_libpq_urls_only():
    assert with_connect_timeout("postgresql://u:p@db/wps", 3) == "postgresql://u:p@db/wps?connect_timeout=3"
    assert (with_connect_timeout("postgresql+psycopg2://u:p%40x@db/wps?sslmode=require", 4)
            == "postgresql+psycopg2://u:p%40x@db/wps?sslmode=require&connect_timeout=4")
    assert with_connect_timeout("postgresql://db/wps?connect_timeout=9", 3) == "postgresql://db/wps?connect_timeout=9"
    assert with_connect_timeout("sqlite:////tmp/x.sqlite", 3) == "sqlite:////tmp/x.sqlite"
    assert with_connect_timeout("postgresql+pg8000://db/wps", 3) == "postgresql+pg8000://db/wps"


def test_the_bounded_url_reaches_pywps_engine_with_its_password_intact(make_env):
    from pywps import configuration

    env = make_env(mode="default")
    env.cfg.write_text(env.cfg.read_text().replace(f"sqlite:///{env.root}/wps.sqlite",
                                                   "postgresql+psycopg2://u:p%%40ss@127.0.0.1:1/db"))
    assert env.config.database == "postgresql+psycopg2://u:p%40ss@127.0.0.1:1/db?connect_timeout=3"
    assert configuration.get_config_value("logging", "database") == env.config.database


# -- the qmaster down: the real DRMAA submitter fails, the client gets a 503 ---------------------


def test_execute_with_grid_engine_unreachable(make_env, monkeypatch):
    """No Grid Engine on this host: DRMAA cannot load or reach anything, as with the qmaster down."""
    monkeypatch.setattr(GridEngineScheduler, "submitter", DrmaaSubmitter())
    monkeypatch.setenv("DRMAA_LIBRARY_PATH", "/nonexistent/libdrmaa.so.1.0")
    env = make_env(mode="scheduler")
    client = app_client(env.config)
    started = time.monotonic()
    resp = client.get("/wps", query_string=execute_query())
    assert_busy(resp, started, "Grid Engine unreachable (DRMAA fails)")
    assert "batch system does not accept jobs" in exception_of(resp)[1]
    nothing_left(env)
    assert request_rows(env) == []
    assert JobStore.for_config(env.config).all() == []


# -- the shared tree does not answer -------------------------------------------------------------


def unblock(fifo: Path) -> None:
    """Open the FIFO for reading, which lets the blocked probe's open() return."""
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    time.sleep(0.2)
    os.close(fd)


def probe_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "shared-tree-probe")


def test_execute_with_the_shared_tree_hanging(make_env):
    """The probe's open() of a FIFO without a reader blocks in the kernel, as a hard NFS mount does."""
    env = make_env(mode="scheduler", extra="[gridengine]\nshared_tree_timeout = 1\n")
    fifo = env.workdir / admission.SharedTreeProbe.FILENAME
    os.mkfifo(fifo)
    client = app_client(env.config)
    before = probe_threads()
    try:
        started = time.monotonic()
        resp = client.get("/wps", query_string=execute_query())
        assert_busy(resp, started, "shared tree hanging (probe timeout 1 s)")
        assert "shared storage does not answer" in exception_of(resp)[1]
        # The probe is still blocked: the next requests are refused at once, without another probe thread.
        for _ in range(3):
            started = time.monotonic()
            resp = client.get("/wps", query_string=execute_query(asynchronous=False))
            assert_busy(resp, started, "shared tree hanging, probe already blocked")
            assert TIMES["shared tree hanging, probe already blocked"] < 0.5
        assert probe_threads() == before + 1
        # Discovery does not touch the shared tree.
        assert client.get("/wps?service=WPS&request=GetCapabilities").status_code == 200
        nothing_left(env)
        assert request_rows(env) == []
    finally:
        unblock(fifo)
    deadline = time.monotonic() + 5
    while probe_threads() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert probe_threads() == before


def test_probe_answers_from_its_cache_and_reports_an_unwritable_tree(tmp_path):
    good, bad = tmp_path / "good", tmp_path / "missing"
    good.mkdir()
    probe = admission.SharedTreeProbe([str(good)], timeout=1, ttl=60)
    assert probe.check() is None
    assert (good / probe.FILENAME).exists()
    (good / probe.FILENAME).unlink()
    assert probe.check() is None  # cached: no new probe
    assert not (good / probe.FILENAME).exists()
    failing = admission.SharedTreeProbe([str(good), str(bad)], timeout=1, ttl=0)
    assert "No such file or directory" in failing.check()


# -- caps on active asynchronous jobs ------------------------------------------------------------


class AcceptingSubmitter:
    """Stands in for DRMAA where the submission must succeed (a job id per job)."""

    def __init__(self) -> None:
        self.count = 0

    def submit(self, spec) -> str:
        self.count += 1
        return str(1000 + self.count)


def from_client(client, address: str, **query: str):
    return client.get("/wps", query_string=execute_query(**query),
                      environ_overrides={"REMOTE_ADDR": "127.0.0.1"},
                      headers={"X-Forwarded-For": f"10.9.9.9, {address}"})


def test_caps_per_client_and_in_total(make_env, monkeypatch):
    submitter = AcceptingSubmitter()
    monkeypatch.setattr(GridEngineScheduler, "submitter", submitter)
    env = make_env(mode="scheduler",
                   extra="[gridengine]\nmax_active_jobs = 3\nmax_active_jobs_per_client = 2\nretry_after = 20\n")
    client = app_client(env.config)
    assert from_client(client, "192.0.2.1").status_code == 200
    assert from_client(client, "192.0.2.1").status_code == 200
    started = time.monotonic()
    resp = from_client(client, "192.0.2.1")
    assert_busy(resp, started, "per-client cap")
    assert "most allowed per client is 2" in exception_of(resp)[1]
    assert resp.headers["Retry-After"] == "20"
    # Synchronous requests are not capped (they hold a worker, not a job slot).
    assert from_client(client, "192.0.2.1", identifier="hello", datainputs="name=x", asynchronous=False
                       ).status_code == 200
    assert from_client(client, "192.0.2.2").status_code == 200
    resp = from_client(client, "192.0.2.3")
    assert resp.status_code == 503 and "most allowed is 3" in exception_of(resp)[1]
    store = JobStore.for_config(env.config)
    assert sorted(job.client for job in store.all()) == ["192.0.2.1", "192.0.2.1", "192.0.2.2"]
    assert submitter.count == 3
    # A job that ends frees its slot.
    first = store.all()[0]
    assert store.transition(first.uuid, "succeeded", "done")
    assert from_client(client, first.client).status_code == 200
    assert not [p for p in env.workdir.iterdir() if p.name.startswith("pywps_process_") and not any(p.iterdir())]


def test_cap_is_exact_when_the_early_check_is_passed_by_many_at_once(make_env, monkeypatch):
    """The front door's count is unlocked; the insert's own check keeps the cap, the late ones get a 503."""
    submitter = AcceptingSubmitter()
    monkeypatch.setattr(GridEngineScheduler, "submitter", submitter)
    env = make_env(mode="scheduler", extra="[gridengine]\nmax_active_jobs = 2\n")
    client = app_client(env.config)
    # Every request passes the early check as if it had come at the same moment as the others.
    monkeypatch.setattr(JobStore, "active_counts", lambda self, client=None: (0, 0))
    statuses = [from_client(client, f"192.0.2.{n}").status_code for n in range(1, 6)]
    assert statuses == [200, 200, 503, 503, 503]
    assert len(JobStore.for_config(env.config).active()) == 2
    assert submitter.count == 2
    nothing = [p for p in env.workdir.iterdir() if p.name.startswith("pywps_process_")]
    assert len(nothing) == 2  # the two accepted jobs' directories only


def test_cap_holds_under_concurrent_inserts(tmp_path):
    """Threads inserting at once into one SQLite file: never more rows than the cap."""
    engine = sa.create_engine(f"sqlite:///{tmp_path}/jobs.sqlite", connect_args={"timeout": 30})
    store = JobStore(engine, prefix="t_")
    results: list[str] = []

    def insert(n: int) -> None:
        try:
            store.create(f"u{n}", "sleep", client=f"c{n % 2}", max_total=5, max_per_client=4)
            results.append("ok")
        except OverCap:
            results.append("over")

    threads = [threading.Thread(target=insert, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("ok") == 5 and results.count("over") == 11
    assert store.active_counts() == (5, 0)


def test_client_column_and_index_are_added_to_an_older_table(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path}/old.sqlite")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t_gridengine_jobs (uuid VARCHAR(255) PRIMARY KEY, identifier VARCHAR(255) "
                             "NOT NULL, state VARCHAR(16) NOT NULL, created_at DATETIME NOT NULL, "
                             "updated_at DATETIME NOT NULL)"))
    store = JobStore(engine, prefix="t_")
    store.create("u1", "sleep", client="192.0.2.7", max_per_client=1)
    assert store.get("u1").client == "192.0.2.7"
    indexes = {ix["name"] for ix in sa.inspect(engine).get_indexes("t_gridengine_jobs")}
    assert "ix_t_gridengine_jobs_client_state" in indexes
    with pytest.raises(OverCap):
        store.create("u2", "sleep", client="192.0.2.7", max_per_client=1)


# -- the client ----------------------------------------------------------------------------------


SETTINGS = AdmissionSettings()


@pytest.mark.parametrize(("environ", "expected"), [
    ({"REMOTE_ADDR": "198.51.100.4", "HTTP_X_FORWARDED_FOR": "192.0.2.1"}, "198.51.100.4"),  # not a proxy
    ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "192.0.2.1, 198.51.100.4"}, "198.51.100.4"),
    ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "198.51.100.4, 127.0.0.1"}, "198.51.100.4"),
    ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "198.51.100.4, garbage"}, "127.0.0.1"),
    ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_REAL_IP": "198.51.100.5"}, "198.51.100.5"),
    ({"REMOTE_ADDR": "127.0.0.1"}, "127.0.0.1"),
    ({"REMOTE_ADDR": "", "HTTP_X_FORWARDED_FOR": "198.51.100.6"}, "198.51.100.6"),  # nginx on the Unix socket
    ({"REMOTE_ADDR": "::ffff:198.51.100.7"}, "198.51.100.7"),
    ({"REMOTE_ADDR": "2001:db8:1:2:aaaa::1"}, "2001:db8:1:2::/64"),
])
def test_client_address(environ, expected):
    assert admission.client_address(environ, SETTINGS) == expected


def test_client_address_trusts_only_the_configured_proxies(make_env):
    from pywps import configuration

    make_env(extra="[gridengine]\ntrusted_proxies = 10.0.0.0/8\n")
    settings = load_admission(configuration.CONFIG)
    assert not settings.trust_unix_socket
    assert admission.client_address({"REMOTE_ADDR": "10.1.2.3", "HTTP_X_FORWARDED_FOR": "192.0.2.9"},
                                    settings) == "192.0.2.9"
    assert admission.client_address({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "192.0.2.9"},
                                    settings) == "127.0.0.1"
    assert admission.client_address({"REMOTE_ADDR": "", "HTTP_X_FORWARDED_FOR": "192.0.2.9"},
                                    settings) == "unix-socket"


@pytest.mark.parametrize(("line", "message"), [
    ("max_active_jobs = -1", "[gridengine] max_active_jobs = '-1' must be at least 0"),
    ("max_active_jobs_per_client = many", "[gridengine] max_active_jobs_per_client = 'many' is not a whole number"),
    ("db_connect_timeout = 0", "[gridengine] db_connect_timeout = '0' must be at least 1"),
    ("shared_tree_timeout = 0", "[gridengine] shared_tree_timeout = '0' must be positive"),
    ("shared_tree_timeout = 600", "[gridengine] shared_tree_timeout = 600 must be at most 60"),
    ("retry_after = soon", "[gridengine] retry_after = 'soon' is not a whole number"),
    ("trusted_proxies = nginx.local", "[gridengine] trusted_proxies: 'nginx.local' is not an address"),
])
def test_bad_admission_settings_name_the_key(make_env, line, message):
    env = make_env(mode="default", extra=f"[gridengine]\n{line}\n")
    with pytest.raises(ConfigError) as raised:
        env.config
    assert message in str(raised.value)


def test_admission_keys_are_known_to_the_scheduler_settings(make_env):
    env = make_env(mode="scheduler", extra="[gridengine]\nmax_active_jobs = 7\ntrusted_proxies = unix\n")
    assert env.config.admission.max_active_jobs == 7
    assert env.config.admission.trust_unix_socket and env.config.admission.trusted_proxies == ()


# -- a refused Execute leaves no work directory ---------------------------------------------------


def test_execute_pywps_refuses_leaves_no_work_directory(make_env):
    """PyWPS makes the work directory before it checks the inputs; the door removes it after a refusal."""
    env = make_env(mode="default")
    client = client_for(admission.wrap(create_service(env.config), env.config))  # PyWPS alone behind the door
    resp = client.get("/wps", query_string=execute_query("sleep", "delay=not-a-number", asynchronous=False))
    assert 400 <= resp.status_code < 500, resp.data
    nothing_left(env)
    resp = client.get("/wps", query_string=execute_query("hello", "name=Friday", asynchronous=False))
    assert resp.status_code == 200, resp.data


def test_without_the_door_pywps_logs_execute_as_before(make_env):
    """Outside the middleware (no current request) an Execute's row is PyWPS's own write."""
    env = make_env(mode="default")
    compat.install_request_logging()
    client = client_for(create_service(env.config))
    assert client.get("/wps", query_string=execute_query("hello", "name=x", asynchronous=False)).status_code == 200
    assert client.get("/wps?service=WPS&request=GetCapabilities").status_code == 200
    assert [operation for _, operation in request_rows(env)] == ["execute"]


# -- the corpus's admission cases ----------------------------------------------------------------


def run_case(client, case):
    return client.open(case.path, method=case.method, query_string=case.query or None, data=case.body or None,
                       headers=list(case.headers))


@pytest.mark.parametrize("case", corpus_admission.DURING_DATABASE_OUTAGE, ids=lambda c: c.name)
def test_corpus_cases_during_a_database_outage(make_env, case):
    env = make_env(mode="scheduler", extra="[gridengine]\nmax_active_jobs = 5\n")
    env.cfg.write_text(env.cfg.read_text().replace(f"sqlite:///{env.root}/wps.sqlite", UNREACHABLE))
    started = time.monotonic()
    resp = run_case(app_client(env.config), case)
    assert resp.status_code == case.status, resp.data
    assert time.monotonic() - started < BOUND
    if case.code:
        assert exception_of(resp)[0] == case.code
    nothing_left(env)


@pytest.mark.parametrize("case", corpus_admission.AT_THE_CAP, ids=lambda c: c.name)
def test_corpus_cases_at_the_cap(make_env, monkeypatch, case):
    monkeypatch.setattr(GridEngineScheduler, "submitter", AcceptingSubmitter())
    env = make_env(mode="scheduler", extra="[gridengine]\nmax_active_jobs = 1\n")
    JobStore.for_config(env.config).create("earlier", "sleep", client="192.0.2.200")
    resp = run_case(app_client(env.config), case)
    assert resp.status_code == case.status, resp.data
    if case.code:
        assert exception_of(resp)[0] == case.code
        assert "Retry-After" in resp.headers
