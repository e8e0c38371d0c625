"""pywps-gridengine-cleanup on SQLite and a temporary tree."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
import uuid as uuidlib
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import sqlalchemy as sa

from pywps_gridengine import cleanup
from pywps_gridengine.cleanup import contained, main
from pywps_gridengine.jobs import JobStore, utcnow

DAY = 86400


def local_ago(days: float) -> dt.datetime:
    return dt.datetime.now() - dt.timedelta(days=days)


def utc_ago(days: float) -> dt.datetime:
    return utcnow() - dt.timedelta(days=days)


def set_age(path: Path, days: float) -> None:
    """Backdate ``path`` and everything below it."""
    stamp = time.time() - days * DAY
    paths = [path]
    if path.is_dir() and not path.is_symlink():
        paths += list(path.rglob("*"))
    for p in paths:
        os.utime(p, (stamp, stamp), follow_symlinks=False)


def new_uuid() -> str:
    return str(uuidlib.uuid1())


def add_request(uuid: str, status: int | None, ended_days_ago: float | None, operation: str = "execute",
                started_days_ago: float | None = None, pid: int = 1) -> None:
    from pywps import dblog

    started = started_days_ago if started_days_ago is not None else (ended_days_ago or 0) + 0.01
    session = dblog.get_session()
    session.add(dblog.ProcessInstance(
        uuid=uuid, pid=pid, operation=operation, version="1.0.0", time_start=local_ago(started),
        time_end=local_ago(ended_days_ago) if ended_days_ago is not None else None, identifier="sleep",
        status=status, percent_done=100 if status in (4, 5) else 10, message="m"))
    session.commit()
    session.close()


def store_request(uuid: str) -> None:
    from pywps import dblog

    session = dblog.get_session()
    session.add(dblog.RequestInstance(uuid=uuid, request=b"{}"))
    session.commit()
    session.close()


def request_uuids() -> set[str]:
    from pywps import dblog

    session = dblog.get_session()
    try:
        return {row.uuid for row in session.query(dblog.ProcessInstance)}
    finally:
        session.close()


def job_uuids(env) -> set[str]:
    return {job.uuid for job in JobStore.for_config(env.config).all()}


class Tree:
    """The files of one job, as PyWPS and the app lay them out."""

    def __init__(self, env, uuid: str, log_dir: Path | None = None) -> None:
        self.uuid = uuid
        self.status = env.outputs / f"{uuid}.xml"
        self.outputs = env.outputs / uuid
        self.workdir = env.workdir / f"pywps_process_{uuid[:8]}x"
        logs = log_dir or self.workdir
        self.logs = [logs / f"{uuid}.out", logs / f"{uuid}.err"]
        self.status.write_text("<wps:ExecuteResponse/>" * 10)
        self.outputs.mkdir()
        (self.outputs / "output.txt").write_text("x" * 1000)
        self.workdir.mkdir()
        (self.workdir / "job_abc.dump").write_text("{}" * 50)
        for log in self.logs:
            log.write_text("log\n")

    @property
    def paths(self) -> list[Path]:
        return [self.status, self.outputs, self.workdir, *self.logs]

    def size(self) -> int:
        total = 0
        for path in (self.status, self.outputs, self.workdir, *self.logs):
            if path.is_dir():
                total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            elif path.exists() and path.parent != self.workdir:
                total += path.stat().st_size
        return total

    def exists(self) -> list[bool]:
        return [p.exists() for p in self.paths]


def gridengine_job(env, uuid: str, state: str, days_ago: float, workdir: str | None = None,
                   pywps_status: int | None = None) -> None:
    """A job handed to Grid Engine: job-table row and PyWPS row, ended (or last seen) ``days_ago``."""
    store = JobStore.for_config(env.config)
    store.create(uuid, "sleep", workdir=workdir, now=utc_ago(days_ago + 0.01))
    store.set_submitted(uuid, "17", "wps-sleep", "-l h_rt=60", now=utc_ago(days_ago + 0.01))
    if state != "accepted":
        store.transition(uuid, "started", "started", exec_host="exec1", now=utc_ago(days_ago + 0.005))
    if state in ("succeeded", "failed"):
        store.transition(uuid, state, "done", now=utc_ago(days_ago))
    status = pywps_status if pywps_status is not None else {"accepted": 1, "started": 2, "succeeded": 4,
                                                            "failed": 5}[state]
    add_request(uuid, status, days_ago)


@pytest.fixture
def env(make_env, tmp_path):
    from pywps import dblog

    (tmp_path / "logs").mkdir()
    env = make_env(mode="scheduler", extra=f"\n[gridengine]\nlog_dir = {tmp_path}/logs\n")
    dblog.get_session().close()  # PyWPS creates its tables on the first request
    return env


def run(env, *args: str) -> int:
    return main(["--config", str(env.cfg), "--days", "7", *args])


# -- ended jobs ----------------------------------------------------------------------------------


def test_old_finished_jobs_are_removed_files_and_rows(env, capsys):
    logs = env.root / "logs"
    ok, bad = new_uuid(), new_uuid()
    trees = [Tree(env, ok, logs), Tree(env, bad, logs)]
    gridengine_job(env, ok, "succeeded", 30, workdir=str(trees[0].workdir))
    gridengine_job(env, bad, "failed", 8, workdir=str(trees[1].workdir))
    expected_bytes = sum(t.size() for t in trees)

    assert run(env) == 0

    for tree in trees:
        assert tree.exists() == [False] * 5
    assert request_uuids() == set() and job_uuids(env) == set()
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert "removed 2 job(s) ended more than 7 day(s) ago" in out[0]
    assert f"{expected_bytes} bytes freed" in out[0]
    assert (env.outputs.is_dir(), env.workdir.is_dir(), logs.is_dir()) == (True, True, True)


def test_job_whose_files_are_already_gone_loses_its_rows(env, capsys):
    uuid = new_uuid()
    gridengine_job(env, uuid, "succeeded", 20, workdir=str(env.workdir / "pywps_process_gone"))
    add_request(new_uuid(), 4, 20)  # synchronous execute without any file left

    assert run(env) == 0

    assert request_uuids() == set() and job_uuids(env) == set()
    assert "removed 2 job(s)" in capsys.readouterr().out


def test_recent_finished_jobs_are_kept(env):
    uuid = new_uuid()
    tree = Tree(env, uuid, env.root / "logs")
    gridengine_job(env, uuid, "succeeded", 6, workdir=str(tree.workdir))
    for path in tree.paths:
        set_age(path, 30)  # old files do not matter while the database says "recent"

    assert run(env) == 0

    assert tree.exists() == [True] * 5
    assert request_uuids() == {uuid} and job_uuids(env) == {uuid}


def test_old_jobs_not_ended_are_kept_whatever_their_age(env, capsys):
    logs = env.root / "logs"
    started, accepted, inconsistent, queued, lagging = (new_uuid() for _ in range(5))
    trees = {u: Tree(env, u, logs) for u in (started, accepted, inconsistent, queued, lagging)}
    gridengine_job(env, started, "started", 40, workdir=str(trees[started].workdir))
    gridengine_job(env, accepted, "accepted", 40, workdir=str(trees[accepted].workdir))
    # PyWPS row finished long ago, but the job table still has it running: not ended.
    gridengine_job(env, inconsistent, "started", 40, workdir=str(trees[inconsistent].workdir), pywps_status=4)
    # The job table says failed long ago, PyWPS's row was never updated: not ended either.
    gridengine_job(env, lagging, "failed", 40, workdir=str(trees[lagging].workdir), pywps_status=2)
    # Local mode: a request waiting in PyWPS's queue.
    add_request(queued, 1, 40)
    store_request(queued)
    for tree in trees.values():
        for path in tree.paths:
            set_age(path, 40)

    assert run(env) == 0

    for tree in trees.values():
        assert tree.exists() == [True] * 5, tree.uuid
    assert request_uuids() == set(trees) and job_uuids(env) == set(trees) - {queued}
    assert "kept 5 older job(s) not ended" in capsys.readouterr().out


def test_other_operations_rows_go_by_age(env):
    old, recent = new_uuid(), new_uuid()
    add_request(old, 4, 10, operation="getcapabilities")
    add_request(recent, 4, 1, operation="describeprocess")

    assert run(env) == 0

    assert request_uuids() == {recent}


# -- orphans ------------------------------------------------------------------------------------------


def test_orphans_old_are_removed_new_and_foreign_kept(env, capsys):
    logs = env.root / "logs"
    old, new = new_uuid(), new_uuid()
    old_paths = [env.outputs / f"{old}.xml", env.outputs / old, env.workdir / "pywps_process_sync1",
                 env.outputs / f".{old}.xml.k2j4h1.tmp", logs / f"{old}.out"]
    new_paths = [env.outputs / f"{new}.xml", env.outputs / new, env.workdir / "pywps_process_sync2"]
    foreign = [env.outputs / "README.txt", env.outputs / "static", env.workdir / "keep_me", logs / "other.log"]
    for path in old_paths + new_paths + foreign:
        if path.suffix in (".xml", ".tmp", ".out", ".txt", ".log"):
            path.write_text("abc")
        else:
            path.mkdir()
            (path / "data.bin").write_bytes(b"\0" * 100)
    for path in old_paths + foreign:
        set_age(path, 10)
    # An old work directory with one file touched recently is still in use.
    busy = env.workdir / "pywps_process_busy"
    busy.mkdir()
    (busy / "old.txt").write_text("a")
    set_age(busy, 10)
    (busy / "fresh.txt").write_text("b")
    os.utime(busy, (time.time() - 10 * DAY,) * 2)

    assert run(env) == 0

    assert [p.exists() for p in old_paths] == [False] * 5
    assert all(p.exists() for p in new_paths + foreign + [busy])
    line = capsys.readouterr().out
    assert "5 orphan(s)" in line and f"{3 + 100 + 100 + 3 + 3} bytes freed" in line


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_open_local_request_protects_unrecorded_work_directories(env):
    """A job PyWPS runs itself has a work directory no table records: kept while its process lives."""
    running, crashed = new_uuid(), new_uuid()
    workdir = env.workdir / "pywps_process_local"
    workdir.mkdir()
    (workdir / "partial.tif").write_text("x")
    set_age(workdir, 10)
    add_request(running, 2, 10, started_days_ago=20, pid=os.getpid())
    add_request(crashed, 2, 25, started_days_ago=30, pid=dead_pid())

    assert run(env) == 0
    assert workdir.exists()

    from pywps import dblog

    session = dblog.get_session()
    session.query(dblog.ProcessInstance).filter_by(uuid=running).update({"pid": dead_pid()})
    session.commit()
    session.close()
    assert run(env) == 0
    assert not workdir.exists()
    assert request_uuids() == {running, crashed}  # not ended: rows are PyWPS's business


def test_files_of_a_known_job_are_not_orphans(env):
    uuid = new_uuid()
    tree = Tree(env, uuid, env.root / "logs")
    gridengine_job(env, uuid, "started", 30, workdir=str(tree.workdir))
    local = new_uuid()  # local mode: no job-table row, PyWPS's row still started
    (env.outputs / f"{local}.xml").write_text("x")
    add_request(local, 2, 30)
    for path in [*tree.paths, env.outputs / f"{local}.xml"]:
        set_age(path, 30)

    assert run(env) == 0

    assert tree.exists() == [True] * 5
    assert (env.outputs / f"{local}.xml").exists()


# -- path guard -----------------------------------------------------------------------------------------


def test_contained_accepts_only_direct_children(tmp_path):
    root = tmp_path / "workdir"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    assert contained(root, root / "pywps_process_a") == root / "pywps_process_a"
    assert contained(root, "/etc") is None
    assert contained(root, "../..") is None
    assert contained(root, "pywps_process_a") is None  # relative
    assert contained(root, str(root)) is None
    assert contained(root, f"{root}/") is None
    assert contained(root, f"{root}/pywps_process_a/../../outside") is None
    assert contained(root, f"{root}/..") is None
    assert contained(root, root / "a" / "b") is None
    (root / "link").symlink_to(tmp_path / "outside")
    assert contained(root, root / "link" / "x") is None  # the parent resolves outside
    assert contained(root, root / "link") == root / "link"  # the link itself is inside


def test_database_values_pointing_outside_are_refused(env, tmp_path, monkeypatch, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    (tmp_path / "outside.xml").write_text("keep")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)  # "../.." would be tmp_path from here
    values = [str(outside), "../..", f"{env.workdir}/pywps_process_x/../../outside", str(env.workdir),
              str(env.outputs / "pywps_process_y")]
    for value in values:
        gridengine_job(env, new_uuid(), "succeeded", 30, workdir=value)
    # A uuid climbing out of outputpath.
    add_request("../outside", 4, 30)

    assert run(env) == 0

    assert (outside / "precious").read_text() == "keep"
    assert (tmp_path / "outside.xml").read_text() == "keep"
    assert env.workdir.is_dir() and env.outputs.is_dir() and deep.is_dir()
    captured = capsys.readouterr()
    assert captured.err.count("refused") == len(values) + 1
    assert "refused 6 path(s)" in captured.out
    # The jobs with a bad work directory are gone from the database (the directory was not theirs);
    # the row with the bad uuid stays.
    assert request_uuids() == {"../outside"} and job_uuids(env) == set()


def test_etc_as_workdir_is_refused(env, capsys):
    gridengine_job(env, new_uuid(), "succeeded", 30, workdir="/etc")

    assert run(env, "--dry-run") == 0

    captured = capsys.readouterr()
    assert "refused work directory" in captured.err and "'/etc'" in captured.err
    assert "/etc" not in captured.out.replace(str(env.root), "")


def test_symlink_is_removed_as_a_link(env, tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "data").write_text("keep")
    uuid = new_uuid()
    (env.outputs / uuid).symlink_to(target)
    gridengine_job(env, uuid, "succeeded", 30)

    assert run(env) == 0

    assert not (env.outputs / uuid).is_symlink()
    assert (target / "data").read_text() == "keep"


def test_rows_stay_when_files_cannot_be_deleted(env, monkeypatch, capsys):
    uuid = new_uuid()
    tree = Tree(env, uuid, env.root / "logs")
    gridengine_job(env, uuid, "succeeded", 30, workdir=str(tree.workdir))

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(shutil, "rmtree", refuse)
    assert run(env) == 1
    monkeypatch.undo()

    assert tree.outputs.exists() and tree.workdir.exists()
    assert request_uuids() == {uuid} and job_uuids(env) == {uuid}
    captured = capsys.readouterr()
    assert "could not delete" in captured.err and "2 error(s)" in captured.out


# -- dry run -----------------------------------------------------------------------------------------


def test_dry_run_deletes_nothing_and_lists_everything(env, capsys):
    logs = env.root / "logs"
    uuid, orphan, other = new_uuid(), new_uuid(), new_uuid()
    tree = Tree(env, uuid, logs)
    gridengine_job(env, uuid, "succeeded", 30, workdir=str(tree.workdir))
    add_request(other, 4, 30, operation="getcapabilities")
    (env.outputs / f"{orphan}.xml").write_text("x")
    set_age(env.outputs / f"{orphan}.xml", 30)
    before = sorted(str(p) for p in env.root.rglob("*"))

    assert run(env, "--dry-run") == 0

    assert sorted(str(p) for p in env.root.rglob("*")) == before
    assert request_uuids() == {uuid, other} and job_uuids(env) == {uuid}
    out = capsys.readouterr().out
    for path in (tree.status, tree.outputs, tree.workdir, *tree.logs, env.outputs / f"{orphan}.xml"):
        if path.parent != tree.workdir:
            assert f"would delete {path} (" in out
    assert f"would delete database rows of job {uuid}" in out
    summary = out.strip().splitlines()[-1]
    assert "(dry run): would remove 1 job(s)" in summary and "1 other request row(s), 1 orphan(s)" in summary
    assert f"{tree.size() + 1} bytes would be freed" in summary


# -- configuration and database errors -----------------------------------------------------------------


def test_bad_config_exits_2_with_a_message(make_env, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("PYWPS_CFG", raising=False)
    assert main(["--days", "3"]) == 2
    assert "pass --config or set PYWPS_CFG" in capsys.readouterr().err

    assert main(["--config", str(tmp_path / "missing.cfg"), "--days", "3"]) == 2
    assert "does not exist or is not readable" in capsys.readouterr().err

    env = make_env(mode="default")
    text = env.cfg.read_text()
    env.cfg.write_text(text.replace(f"workdir = {env.root}/workdir", f"workdir = {env.root}/nowhere"))
    assert main(["--config", str(env.cfg), "--days", "3"]) == 2
    assert "[server] workdir" in capsys.readouterr().err

    env.cfg.write_text(text.replace(f"workdir = {env.root}/workdir\n", ""))
    assert main(["--config", str(env.cfg), "--days", "3"]) == 2
    assert "[server] workdir is not set" in capsys.readouterr().err

    env.cfg.write_text(text + "[server]\nurl = again\n")
    assert main(["--config", str(env.cfg), "--days", "3"]) == 2
    assert "configuration" in capsys.readouterr().err


def test_database_errors_exit_2_without_the_password(make_env, capsys):
    env = make_env(mode="default")
    text = env.cfg.read_text()
    database = f"sqlite:///{env.root}/wps.sqlite"
    for url, words in [("postgresql+nosuchdriver://wps:s3cret@db.example.org/wps", "database error"),
                       (f"sqlite:///{env.root}/no/such/dir/wps.sqlite", "database error"),
                       (f"sqlite:///{env.root}/empty.sqlite", "pywps_requests not found")]:
        env.cfg.write_text(text.replace(database, url))
        assert main(["--config", str(env.cfg), "--days", "3"]) == 2, url
        err = capsys.readouterr().err
        assert words in err and "s3cret" not in err and "Traceback" not in err


def test_command_line_process_reports_bad_config_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pywps_gridengine.cleanup", "--config", str(tmp_path / "x.cfg"),
                           "--days", "7"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYWPS_CFG": ""})
    assert proc.returncode == 2
    assert proc.stderr.startswith("pywps-gridengine-cleanup: configuration") and "Traceback" not in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("days", ["0", "-1", "seven"])
def test_days_must_be_a_positive_whole_number(days, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--days", days])
    assert exit_info.value.code == 2
    assert "--days" in capsys.readouterr().err


def test_console_script_is_declared():
    (script,) = entry_points(group="console_scripts", name="pywps-gridengine-cleanup")
    assert script.load() is cleanup.main


def test_cleanup_class_on_an_engine(tmp_path):
    """The pass works on any engine/prefix, not only the configured one."""
    engine = sa.create_engine(f"sqlite:///{tmp_path}/db.sqlite")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE x_requests (uuid VARCHAR PRIMARY KEY, pid INTEGER, operation VARCHAR, "
                             "version VARCHAR, time_start DATETIME, time_end DATETIME, identifier VARCHAR, "
                             "message VARCHAR, percent_done FLOAT, status INTEGER)"))
        conn.execute(sa.text("INSERT INTO x_requests VALUES ('u1', 1, 'execute', '1.0.0', :t, :t, 'p', '', 100, 4)"),
                     {"t": local_ago(3)})
    roots = cleanup.Roots(tmp_path, tmp_path)
    (tmp_path / "u1.xml").write_text("abc")
    store = JobStore(engine, "x_", create_table=False)
    summary = cleanup.Cleanup(store, roots, 2, out=lambda _: None, err=lambda _: None).run()
    assert (summary.jobs, summary.paths, summary.bytes) == (1, 1, 3)
    assert not (tmp_path / "u1.xml").exists()
