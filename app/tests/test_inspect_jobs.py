"""pywps-gridengine-jobs on SQLite and a temporary tree: rows written by the job store, read by the command."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import tomllib
import uuid as uuidlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from pywps_gridengine import inspect_jobs
from pywps_gridengine.inspect_jobs import main, parse_since, tail, within
from pywps_gridengine.jobs import JobRecord, JobStore, Usage, utcnow

APP = Path(__file__).resolve().parents[1]


def utc_ago(hours: float) -> dt.datetime:
    return utcnow() - dt.timedelta(hours=hours)


def new_uuid(head: str = "") -> str:
    text = str(uuidlib.uuid4())
    return head + text[len(head):]


@pytest.fixture
def env(make_env, tmp_path):
    (tmp_path / "logs").mkdir()
    return make_env(mode="scheduler", extra=f"\n[gridengine]\nlog_dir = {tmp_path}/logs\n")


def store_of(env) -> JobStore:
    return JobStore.for_config(env.config)


def make_job(env, uuid: str, *, process: str = "sleep", state: str = "succeeded", hours_ago: float = 1.0,
             sge_job_id: str | None = "17", message: str | None = None, usage: Usage | None = None,
             workdir: str | None = None) -> str:
    """A job as the app writes it: accepted, submitted, started on exec1, then ended ``hours_ago`` (or not)."""
    store = store_of(env)
    store.create(uuid, process, workdir=workdir, now=utc_ago(hours_ago + 0.2), client="192.0.2.7")
    if sge_job_id is not None:
        store.set_submitted(uuid, sge_job_id, f"wps-{process}-{uuid[:8]}", "-l h_rt=60", now=utc_ago(hours_ago + 0.2))
    if state != "accepted":
        assert store.transition(uuid, "started", "running", exec_host="exec1", now=utc_ago(hours_ago + 0.1))
    if state in ("succeeded", "failed"):
        assert store.transition(uuid, state, message or f"done: {state}", usage=usage, now=utc_ago(hours_ago))
    return uuid


def run(env, capsys, *args: str) -> tuple[int, str, str]:
    status = main(["--config", str(env.cfg), *args])
    out, err = capsys.readouterr()
    return status, out, err


# -- list ------------------------------------------------------------------------------------------


def test_list_shows_jobs_newest_first_one_line_each(env, capsys):
    old = make_job(env, new_uuid(), state="failed", hours_ago=5, sge_job_id="11",
                   message="Grid Engine job 11 was deleted (qdel) by wps@web1 on exec1 after 12 s, before it "
                           "finished.\nsecond line")
    mid = make_job(env, new_uuid(), process="hello", hours_ago=3, sge_job_id="12")
    new = make_job(env, new_uuid(), state="accepted", hours_ago=1, sge_job_id=None)

    status, out, err = run(env, capsys, "list")

    assert (status, err) == (0, "")
    header, *lines = out.splitlines()
    assert header.split()[:3] == ["UUID", "PROCESS", "STATE"]
    assert [line.split()[0] for line in lines] == [new, mid, old]
    newest = lines[0].split()
    assert newest[1:5] == ["sleep", "accepted", "-", "-"]  # no Grid Engine job id, no exec host yet
    oldest = lines[2]
    assert oldest.split()[1:5] == ["sleep", "failed", "11", "exec1"]
    job = store_of(env).get(old)
    for stamp in (job.created_at, job.started_at, job.finished_at):
        assert stamp.strftime("%Y-%m-%dT%H:%M:%SZ") in oldest
    assert "was deleted (qdel) by wps@web1" in oldest and "second line" not in oldest
    assert oldest.endswith("...") and len(oldest.split("  ")[-1].strip()) <= inspect_jobs.REASON_WIDTH


def test_list_filters_in_sql_and_limit(env, capsys):
    failed = make_job(env, new_uuid(), state="failed", hours_ago=5)
    hello = make_job(env, new_uuid(), process="hello", hours_ago=3)
    started = make_job(env, new_uuid(), state="started", hours_ago=1)

    def uuids(*args: str) -> list[str]:
        status, out, _ = run(env, capsys, "list", "--json", *args)
        assert status == 0
        return [job["uuid"] for job in json.loads(out)]

    assert uuids("--state", "failed") == [failed]
    assert uuids("--state", "active") == [started]
    assert uuids("--state", "ended") == [hello, failed]
    assert uuids("--process", "hello") == [hello]
    assert uuids("--process", "nosuch") == []
    assert uuids("--since", "4h") == [started, hello]
    assert uuids("--since", "2h", "--state", "ended") == []
    since = (utcnow() - dt.timedelta(hours=4)).replace(tzinfo=dt.UTC)
    assert uuids("--since", since.isoformat()) == [started, hello]
    # An offset is honoured: the same moment written in UTC+02:00.
    assert uuids("--since", since.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat()) == [started, hello]

    status, out, err = run(env, capsys, "list", "--limit", "2")
    assert status == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == [started, hello]
    assert "showing the newest 2 jobs" in err


def test_list_json_is_one_document_with_utc_times(env, capsys):
    uuid = make_job(env, new_uuid(), state="failed",
                    usage=Usage(exit_status=137, wallclock=30.5, cpu=2.25, peak_memory=536870912.0))
    status, out, _ = run(env, capsys, "list", "--json")
    assert status == 0
    (job,) = json.loads(out)
    record = store_of(env).get(uuid)
    assert set(job) == {field.name for field in dataclasses.fields(JobRecord)}
    assert job["uuid"] == uuid and job["state"] == "failed" and job["sge_job_id"] == "17"
    assert (job["exit_status"], job["wallclock"], job["cpu"], job["peak_memory"]) == (137, 30.5, 2.25, 536870912.0)
    for name in ("created_at", "submitted_at", "started_at", "finished_at", "updated_at"):
        assert job[name].endswith("Z")
        assert dt.datetime.fromisoformat(job[name]) == getattr(record, name).replace(tzinfo=dt.UTC)
    assert job["gone_since"] is None


def test_list_without_jobs_or_job_table(make_env, capsys):
    """Default processing mode, fresh database: nothing was ever handed to Grid Engine (the pywps scenario)."""
    env = make_env(mode="default")
    status, out, err = run(env, capsys, "list")
    assert (status, out, err) == (0, "no jobs\n", "")
    engine = sa.create_engine(f"sqlite:///{env.root}/wps.sqlite")
    assert not sa.inspect(engine).has_table("pywps_gridengine_jobs")  # read only: no table created
    engine.dispose()
    status, out, err = run(env, capsys, "list", "--json")
    assert (status, json.loads(out)) == (0, [])


# -- show ------------------------------------------------------------------------------------------


def test_show_by_uuid_prefix_and_grid_engine_id(env, capsys):
    uuid = make_job(env, new_uuid(), state="failed", sge_job_id="4242",
                    usage=Usage(exit_status=1, wallclock=12.0, cpu=3.5, peak_memory=511.9 * 1024 * 1024))
    make_job(env, new_uuid(), sge_job_id="4243")
    outputs = []
    for job in (uuid, uuid.upper(), uuid[:8], "sge:4242", "4242", " 4242 "):
        status, out, err = run(env, capsys, "show", job)
        assert (status, err) == (0, ""), job
        outputs.append(out)
    assert len(set(outputs)) == 1
    out = outputs[0]
    fields = dict(line.split(":", 1) for line in out.split("files:")[0].splitlines())
    assert [name.strip() for name in fields] == [label for _, label in inspect_jobs.SHOW_FIELDS]
    assert {field.name for field in dataclasses.fields(JobRecord)} == {name for name, _ in inspect_jobs.SHOW_FIELDS}
    assert fields["uuid"].strip() == uuid
    assert fields["state"].strip() == "failed"
    assert fields["Grid Engine job"].strip() == "4242"
    assert fields["exec host"].strip() == "exec1"
    assert fields["client"].strip() == "192.0.2.7"
    assert fields["exit status"].strip() == "1"
    assert fields["wallclock"].strip() == "12 s" and fields["cpu"].strip() == "3.5 s"
    assert fields["peak memory"].strip().endswith("(511.9M)")
    assert fields["gone since"].strip() == "-"


def test_show_marks_each_file_present_or_absent(env, capsys):
    workdir = env.workdir / "pywps_process_abc"
    workdir.mkdir()
    uuid = make_job(env, new_uuid(), workdir=str(workdir))
    (env.outputs / f"{uuid}.xml").write_text("<doc/>")
    (env.root / "logs" / f"{uuid}.err").write_text("boom\n")

    status, out, _ = run(env, capsys, "show", uuid)
    assert status == 0
    files = {line.split("  ")[1].strip(): line.split() for line in out.split("files:\n")[1].splitlines()}
    logs = env.root / "logs"
    assert files["status document"][2:4] == ["present", str(env.outputs / f"{uuid}.xml")]
    assert files["outputs"][1:3] == ["absent", str(env.outputs / uuid)]
    assert files["work directory"][2:4] == ["present", str(workdir)]
    assert files["stdout"][1:3] == ["absent", str(logs / f"{uuid}.out")]
    assert files["stderr"][1:4] == ["present", str(logs / f"{uuid}.err"), "(5"]

    status, out, _ = run(env, capsys, "show", uuid, "--json")
    document = json.loads(out)
    assert document["uuid"] == uuid and document["created_at"].endswith("Z")
    assert document["files"]["status_document"] == {"path": str(env.outputs / f"{uuid}.xml"), "present": True,
                                                     "kind": "file", "bytes": 6}
    assert document["files"]["outputs"]["present"] is False
    assert document["files"]["work_directory"]["kind"] == "directory"
    assert document["files"]["stderr"]["bytes"] == 5
    assert document["files"]["stdout"] == {"path": str(logs / f"{uuid}.out"), "present": False, "kind": None,
                                           "bytes": None}


def test_logs_are_in_the_work_directory_without_log_dir(make_env, capsys):
    env = make_env(mode="scheduler")
    workdir = env.workdir / "pywps_process_x"
    workdir.mkdir()
    uuid = make_job(env, new_uuid(), workdir=str(workdir))
    (workdir / f"{uuid}.out").write_text("hello\n")
    status, out, _ = run(env, capsys, "show", uuid, "--json")
    files = json.loads(out)["files"]
    assert files["stdout"]["path"] == str(workdir / f"{uuid}.out") and files["stdout"]["present"] is True
    assert files["stderr"]["path"] == str(workdir / f"{uuid}.err") and files["stderr"]["present"] is False

    status, out, _ = run(env, capsys, "log", uuid)
    assert status == 0 and "hello" in out


def test_work_directory_outside_the_configured_one_is_not_looked_at(make_env, capsys):
    env = make_env(mode="scheduler")
    uuid = make_job(env, new_uuid(), workdir="/etc")
    status, out, _ = run(env, capsys, "show", uuid, "--json")
    files = json.loads(out)["files"]
    assert status == 0
    assert files["work_directory"]["path"] is None and "not in [server] workdir" in files["work_directory"]["note"]
    assert files["stderr"]["path"] is None  # no log_dir: the logs would be there
    status, out, _ = run(env, capsys, "log", uuid)
    assert status == 0
    assert "==> stderr: unknown (no [gridengine] log_dir and no usable work directory) <==" in out


# -- finding a job: errors -------------------------------------------------------------------------


def test_ambiguous_prefix_unknown_job_and_bad_job(env, capsys):
    first = make_job(env, new_uuid("abcd1"))
    second = make_job(env, new_uuid("abcd2"))

    status, out, err = run(env, capsys, "show", "abcd")
    assert (status, out) == (1, "")
    assert err.count("\n") == 1 and "ambiguous" in err and first in err and second in err
    assert run(env, capsys, "show", "abcd2")[0] == 0

    status, out, err = run(env, capsys, "show", "ffff")
    assert (status, out, err) == (1, "", "pywps-gridengine-jobs: no job with a uuid starting with 'ffff'\n")
    status, _, err = run(env, capsys, "log", "sge:999")
    assert (status, err) == (1, "pywps-gridengine-jobs: no job with Grid Engine job id 999\n")

    for bad in ("x%", "ab_", "sge:", "-", "../etc"):
        status, out, err = run(env, capsys, "show", bad)
        assert status == 2 and out == "" and "is not a uuid" in err and "Traceback" not in err, bad


def test_grid_engine_id_of_several_jobs_is_ambiguous(env, capsys):
    older = make_job(env, new_uuid(), sge_job_id="7", hours_ago=500)
    newer = make_job(env, new_uuid(), sge_job_id="7", hours_ago=1)
    status, _, err = run(env, capsys, "show", "sge:7")
    assert status == 1
    assert "belongs to 2 jobs" in err and err.index(newer) < err.index(older)


def test_bare_number_falls_back_to_a_uuid_prefix(env, capsys):
    uuid = make_job(env, new_uuid("12345678"), sge_job_id="99")
    status, out, _ = run(env, capsys, "show", "12345678")
    assert status == 0 and out.startswith("uuid:") and uuid in out
    status, _, err = run(env, capsys, "show", "sge:12345678")
    assert status == 1 and "Grid Engine job id 12345678" in err
    status, _, err = run(env, capsys, "show", "5555")
    assert status == 1 and "no job with Grid Engine job id 5555 or a uuid starting with '5555'" in err


def test_prefix_wildcards_are_literal(env):
    make_job(env, new_uuid("ab"))
    store = store_of(env)
    assert store.by_uuid_prefix("%") == [] and store.by_uuid_prefix("_b") == []
    assert len(store.by_uuid_prefix("ab")) == 1


# -- log -------------------------------------------------------------------------------------------


def test_log_prints_the_tail_of_stderr_then_stdout(env, capsys):
    uuid = make_job(env, new_uuid())
    logs = env.root / "logs"
    (logs / f"{uuid}.err").write_text("".join(f"err {n}\n" for n in range(100)))
    (logs / f"{uuid}.out").write_bytes(b"out \x1b[31mred\x1b[0m \xff\n")

    status, out, err = run(env, capsys, "log", uuid, "--lines", "3")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"==> stderr: {logs / f'{uuid}.err'} (last 3 lines, 690 bytes)")
    assert lines[1:4] == ["err 97", "err 98", "err 99"]
    assert lines[4].startswith(f"==> stdout: {logs / f'{uuid}.out'} (1 line,")
    assert lines[5] == "out \\x1b[31mred\\x1b[0m \\xff"  # the terminal is not driven by a job's output
    assert len(lines) == 6


def test_log_says_when_the_files_are_gone(env, capsys):
    ended = make_job(env, new_uuid())
    status, out, err = run(env, capsys, "log", ended)
    assert (status, err) == (0, "")
    assert out.count("gone: removed by the clean-up") == 2
    waiting = make_job(env, new_uuid(), state="accepted", sge_job_id=None)
    status, out, _ = run(env, capsys, "log", waiting)
    assert status == 0 and out.count("not written yet: the job has not started") == 2


def test_log_refuses_what_is_not_a_regular_file_without_blocking(env, capsys):
    uuid = make_job(env, new_uuid())
    os.mkfifo(env.root / "logs" / f"{uuid}.err")  # opening a FIFO to read would wait for a writer
    (env.root / "logs" / f"{uuid}.out").symlink_to(env.cfg)  # never followed
    status, out, _ = run(env, capsys, "log", uuid)
    assert status == 0
    assert "stderr:" in out and "not a regular file" in out
    assert "stdout:" in out and "cannot read it" in out and "database" not in out


def test_tail_reads_a_bounded_part_from_the_end(tmp_path):
    path = tmp_path / "big.err"
    path.write_bytes(b"".join(b"%06d %s\n" % (n, b"x" * 200) for n in range(20000)))  # 4 MB
    got = tail(str(path), 2)
    assert [line[:6] for line in got.lines] == ["019998", "019999"] and got.cut
    got = tail(str(path), 10000, max_bytes=4096)
    assert 0 < len(got.lines) <= 4096 // 207 and got.lines[-1].startswith("019999") and got.cut
    path.write_bytes(b"y" * 100_000)  # one line, no newline: its end, marked
    got = tail(str(path), 5, max_bytes=1000)
    assert got.lines == ["[...]" + "y" * 1000]
    path.write_bytes(b"a\nb\n")
    assert tail(str(path), 5) == inspect_jobs.Tail(["a", "b"], 4, False)
    path.write_bytes(b"")
    assert tail(str(path), 5) == inspect_jobs.Tail([], 0, False)


def test_within_gives_up_on_work_that_blocks():
    release = threading.Event()
    try:
        with pytest.raises(inspect_jobs.InspectError, match="the shared tree did not answer within 0.2 s"):
            within(0.2, release.wait, "the shared tree")
    finally:
        release.set()
    assert within(5, lambda: 42, "x") == 42
    with pytest.raises(KeyError):
        within(5, lambda: {}["k"], "x")


def test_a_hung_shared_tree_still_shows_the_row(env, capsys, monkeypatch):
    uuid = make_job(env, new_uuid())
    gate = threading.Event()
    real_look = inspect_jobs._look
    monkeypatch.setattr(inspect_jobs, "FILES_TIMEOUT", 0.2)
    # Stands in for the kernel blocking on a hard NFS mount whose server is away.
    monkeypatch.setattr(inspect_jobs, "_look", lambda *args: gate.wait() and real_look(*args))
    try:
        status, out, err = run(env, capsys, "show", uuid)
    finally:
        gate.set()
    assert status == 1
    assert "uuid:" in out and uuid in out and "unknown: the shared tree did not answer within 0.2 s" in out
    assert err == "pywps-gridengine-jobs: the shared tree did not answer within 0.2 s (a hung NFS mount?)\n"


# -- arguments, configuration, database ------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("30m", dt.timedelta(minutes=30)), ("2h", dt.timedelta(hours=2)), ("1d12h", dt.timedelta(hours=36)),
    ("1w", dt.timedelta(weeks=1)), ("90s", dt.timedelta(seconds=90)),
])
def test_since_durations(value, expected):
    assert parse_since(value) == inspect_jobs.Since(ago=expected)


def test_since_moments():
    assert parse_since("2024-05-01").moment == dt.datetime(2024, 5, 1)
    assert parse_since("2024-05-01T12:00:00Z").moment == dt.datetime(2024, 5, 1, 12)
    assert parse_since("2024-05-01T14:00:00+02:00").moment == dt.datetime(2024, 5, 1, 12)


@pytest.mark.parametrize("args, words", [
    (["list", "--since", "yesterday"], "--since"), (["list", "--since", ""], "--since"),
    (["list", "--since", "2x"], "--since"), (["list", "--limit", "0"], "--limit"),
    (["list", "--state", "running"], "--state"), (["log", "abc", "--lines", "-1"], "--lines"),
    (["show"], "JOB"), ([], "required"),
])
def test_bad_arguments_exit_2(args, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_config_after_the_subcommand_and_from_the_environment(env, capsys, monkeypatch):
    uuid = make_job(env, new_uuid())
    assert main(["list", "--config", str(env.cfg)]) == 0
    assert uuid in capsys.readouterr().out
    monkeypatch.setenv("PYWPS_CFG", str(env.cfg))
    assert main(["list"]) == 0
    assert uuid in capsys.readouterr().out


def test_bad_configuration_exits_2(make_env, tmp_path, capsys, monkeypatch):
    status = main(["--config", str(tmp_path / "missing.cfg"), "list"])
    assert status == 2 and "does not exist or is not readable" in capsys.readouterr().err
    env = make_env(mode="default")
    env.cfg.write_text(env.cfg.read_text().replace(f"database = sqlite:///{env.root}/wps.sqlite\n", ""))
    assert main(["--config", str(env.cfg), "list"]) == 2
    assert "[logging] database is not set" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_configuration_names_the_service_user(env, capsys):
    env.cfg.chmod(0o200)
    assert main(["--config", str(env.cfg), "list"]) == 2
    assert "run pywps-gridengine-jobs as the service user" in capsys.readouterr().err
    env.cfg.chmod(0o600)
    hidden = env.root / "etc-pywps"  # as /etc/pywps: the directory is closed to other users too
    hidden.mkdir()
    env.cfg.rename(hidden / "pywps.cfg")
    hidden.chmod(0o000)
    try:
        assert main(["--config", str(hidden / "pywps.cfg"), "list"]) == 2
    finally:
        hidden.chmod(0o700)
    assert "run pywps-gridengine-jobs as the service user" in capsys.readouterr().err


def test_database_unreachable_exits_1_without_the_password(make_env, capsys):
    env = make_env(mode="default")
    text = env.cfg.read_text()
    for url in ("postgresql+psycopg2://wps:s3cret@127.0.0.1:1/wps", "postgresql+nosuchdriver://wps:s3cret@db/wps",
                f"sqlite:///{env.root}/no/such/dir/wps.sqlite"):
        env.cfg.write_text(text.replace(f"sqlite:///{env.root}/wps.sqlite", url))
        for args in (["list"], ["show", "abc"], ["log", "sge:1"]):
            status = main(["--config", str(env.cfg), *args])
            out, err = capsys.readouterr()
            assert (status, out) == (1, ""), (url, args)
            assert err.startswith("pywps-gridengine-jobs: database unreachable (") and err.count("\n") == 1
            assert "s3cret" not in err and "Traceback" not in err


def test_command_line_process_reports_errors_without_traceback(env):
    run_env = {**os.environ, "PYWPS_CFG": str(env.cfg)}
    proc = subprocess.run([sys.executable, "-m", "pywps_gridengine.inspect_jobs", "show", "sge:1"],
                          capture_output=True, text=True, timeout=60, env=run_env)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == "pywps-gridengine-jobs: no job with Grid Engine job id 1\n"
    proc = subprocess.run([sys.executable, "-m", "pywps_gridengine.inspect_jobs", "--help"],
                          capture_output=True, text=True, timeout=60, env=run_env)
    assert proc.returncode == 0 and "as the service user" in proc.stdout


def test_console_script_is_declared():
    scripts = tomllib.loads((APP / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts["pywps-gridengine-jobs"].partition(":")
    assert module == "pywps_gridengine.inspect_jobs" and getattr(inspect_jobs, function) is main
