#!/usr/bin/env python3
"""./pwg bench, figure ``rows``: the job list and the clean-up pass at 1,000 and at 100,000 job rows.

The demo's real tables are never touched. Scratch tables of their own prefix
(:data:`PREFIX`) are created for the run from the app's own definitions (the
job store's tables and indexes, compiled for PostgreSQL), as the schema owner,
so the web tier's role gets its rights on them as on the real ones (the
owner's default privileges); they are filled with SQL (``generate_series``)
and always dropped afterwards, also on an error, Ctrl-C or SIGTERM, and at the
start of the next run if a run was killed outright.

What is timed runs the app's own code as the web tier runs it: on the web
host, as the service user, with the app virtualenv's Python, PyWPS and
database driver, the web tier's database role and TLS, and a copy of
pywps.cfg that differs only in the table prefix and in the directories the
clean-up looks at (empty scratch directories). The app code is this
checkout's (``app/src``, copied into the scratch directory and put first on
``PYTHONPATH``), so the figures are those of the code under review whatever
release the demo has installed.

Per table size: the job list (:meth:`JobStore.find`) newest 50, by one state,
by the active states, by a process identifier, page 2000 of 50 by offset and
by cursor, each the median of several runs with PostgreSQL's plan of the
query; the same again without the list indexes (the table as a release
before them left it), the counterpart; then a clean-up pass that finds
nothing old enough to delete, and one that deletes about 10 % of the jobs.

This file is also the worker on the web host: ``python - worker ...`` with
this file on stdin, so it imports only the standard library at the top.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

PREFIX = "pwgbench_"
SIZES = (1_000, 100_000)
PAGE_SIZE = 50
DEEP_PAGE = 2000
RUNS = 7
#: Days of the clean-up: nothing ended that long ago (the fill spans 30 days) / about a tenth did.
DAYS_NOTHING, DAYS_TENTH = 31, 27
#: Process identifiers of the fill and their shares (the last, rarest, is the filtered list's).
PROCESSES = (("sleep", 0.40), ("hello", 0.25), ("wordcount", 0.15), ("buffer", 0.10), ("ndvi", 0.07),
             ("reproject", 0.03))
FAILED_SHARE = 0.12
#: The database's own time of a list page at the larger size (EXPLAIN ANALYZE): what grows with the table.
#: The client's time is shown beside it; on a busy test machine it is mostly waiting for a CPU.
TARGET_LIST_SERVER_MS = 10.0
#: Seconds one statement of the worker may take (a quadratic plan shows up as this, not as a hang).
STATEMENT_TIMEOUT_S = 600

# The list queries timed, each a JobStore.find call: name -> (label, keyword arguments, what its plan must be
# at the larger size). "index": the rows come in order from an index, no sort. "no seq scan": an index
# finds the rows, a sort of them may follow: the active jobs are at most the admission cap (a few hundred;
# a btree gives no order over an IN list of two states), and page 2,000's cursor leaves the last 50 rows.
# An offset page has no target: every plan reads the rows it skips; a deep page is what the cursor is for.
LIST_QUERIES: dict[str, tuple[str, dict[str, Any], str]] = {
    "newest": ("newest 50", {}, "index"),
    "state": ("state failed", {"states": ["failed"]}, "index"),
    "active": ("state active (accepted, started)", {"states": ["accepted", "started"]}, "no seq scan"),
    "process": (f"process {PROCESSES[-1][0]}", {"identifier": PROCESSES[-1][0]}, "index"),
    "offset": (f"page {DEEP_PAGE:,} of {PAGE_SIZE} by offset", {"offset": (DEEP_PAGE - 1) * PAGE_SIZE}, ""),
    "cursor": (f"page {DEEP_PAGE:,} of {PAGE_SIZE} by cursor", {}, "no seq scan"),
}


def plan_ok(verdict: str, required: str) -> bool:
    """Whether a plan verdict (plan_verdict) meets a query's requirement (LIST_QUERIES)."""
    if required == "index":
        return verdict == "index"
    if required == "no seq scan":
        return verdict in ("index", "index + sort")
    return True


# --- pure parts (tested in tests/test_bench_rows.py) ------------------------------------------------


def median(samples: Sequence[float]) -> float:
    """The median of the samples (statistics.median), refusing an empty list with a clear error."""
    if not samples:
        raise ValueError("no samples")
    return float(statistics.median(samples))


def plan_nodes(plan: Any) -> list[dict[str, Any]]:
    """Every node of a PostgreSQL ``EXPLAIN (FORMAT JSON)`` plan, depth first (the document or its Plan)."""
    if isinstance(plan, list):
        plan = plan[0]
    root = plan.get("Plan", plan)
    nodes, todo = [], [root]
    while todo:
        node = todo.pop(0)
        nodes.append(node)
        todo[0:0] = node.get("Plans", [])
    return nodes


def plan_verdict(plan: Any, table: str) -> dict[str, Any]:
    """How a plan reads ``table``: ``index`` (rows in order from an index, no sort), ``index + sort``
    (an index or bitmap scan, then a sort), ``seq scan`` (the whole table, with or without a sort).

    ``text`` names the node and index, e.g. ``Index Scan Backward ix_..._created``; ``subplans``
    lists correlated subplans that PostgreSQL could not hash (each runs once per outer row).
    """
    nodes = plan_nodes(plan)
    scans = [n for n in nodes if n.get("Relation Name") == table]
    sorted_ = any(n["Node Type"] in ("Sort", "Incremental Sort") for n in nodes)
    # A subplan PostgreSQL hashes is named so in the condition that uses it ("NOT (hashed SubPlan 1)").
    conditions = " ".join(str(value) for n in nodes for key, value in n.items() if key.endswith(("Filter", "Cond")))
    unhashed = [n["Subplan Name"] for n in nodes if n.get("Parent Relationship") == "SubPlan"
                and f"hashed {n['Subplan Name']}" not in conditions]
    parts = []
    for node in scans:
        kind = node["Node Type"]
        if kind in ("Index Scan", "Index Only Scan") and node.get("Scan Direction") == "Backward":
            kind += " Backward"
        parts.append(f"{kind} {node['Index Name']}" if node.get("Index Name") else kind)
    bitmap = [n for n in nodes if n["Node Type"] == "Bitmap Index Scan"
              and any(s["Node Type"] == "Bitmap Heap Scan" for s in scans)]
    parts += [f"Bitmap Index Scan {n['Index Name']}" for n in bitmap]
    if any(n["Node Type"] == "Seq Scan" for n in scans):
        verdict = "seq scan"
    elif not scans:
        verdict = "none"
    else:
        verdict = "index + sort" if sorted_ else "index"
    text = " + ".join(dict.fromkeys(parts)) or "no scan of the table"
    if sorted_:
        text += " + Sort"
    return {"verdict": verdict, "text": text, "unhashed_subplans": unhashed}


def scans_of(plan: Any, prefix: str) -> list[str]:
    """``table: node`` of every scan of a table of ``prefix`` in a plan (the clean-up's verdicts)."""
    out = []
    for node in plan_nodes(plan):
        table = node.get("Relation Name", "")
        if table.startswith(prefix):
            name = f" {node['Index Name']}" if node.get("Index Name") else ""
            out.append(f"{table[len(prefix):]}: {node['Node Type']}{name}")
    return out


def fill_sql(prefix: str, rows: int, workdir: str, local_offset_s: int, seed: float = 0.42) -> str:
    """SQL that fills the scratch tables with ``rows`` jobs as the app leaves them over 30 days.

    Most jobs ended (succeeded, :data:`FAILED_SHARE` failed) at times spread
    evenly over the last 30 days; ``min(300, rows // 20)`` are active, created
    in the last two hours. Each job has PyWPS's requests row (its times in the
    web host's local time, ``local_offset_s`` from UTC, as PyWPS writes them);
    each succeeded one its kept status document. Synchronous Execute requests
    (no job row), one for every 50 jobs, ended over the same 30 days.
    """
    if not prefix.replace("_", "").isalnum():
        raise ValueError(f"not a table prefix: {prefix!r}")
    active = min(300, rows // 20)
    bounds, total = [], 0.0
    for name, share in PROCESSES:
        total += share
        bounds.append(f"WHEN r_proc < {total:.4f} THEN '{name}'")
    process_case = f"CASE {' '.join(bounds[:-1])} ELSE '{PROCESSES[-1][0]}' END"
    local = f"interval '{int(local_offset_s)} seconds'"
    workdir_sql = workdir.replace("'", "''")
    return f"""
SELECT setseed({seed});
INSERT INTO {prefix}gridengine_jobs (uuid, identifier, state, sge_job_id, job_name, native_specification, workdir,
    exec_host, message, created_at, submitted_at, started_at, heartbeat_at, finished_at, updated_at,
    exit_status, wallclock, cpu, peak_memory, client)
SELECT uuid, identifier, state, i::text, 'wps-' || identifier || '-' || left(uuid, 8), '-l h_rt=3600',
       '{workdir_sql}/pywps_process_' || left(uuid, 8),
       CASE WHEN state = 'accepted' THEN NULL ELSE 'exec' || (1 + i % 2) END,
       CASE state WHEN 'failed' THEN 'Process error: the job exited 1' WHEN 'succeeded' THEN 'done' END,
       created_at, created_at + interval '0.2 seconds',
       CASE WHEN state = 'accepted' THEN NULL ELSE created_at + interval '1 second' END,
       CASE WHEN state = 'accepted' THEN NULL ELSE created_at + interval '2 seconds' END,
       CASE WHEN final THEN created_at + run_s * interval '1 second' END,
       CASE WHEN final THEN created_at + run_s * interval '1 second' ELSE created_at END,
       CASE state WHEN 'failed' THEN 1 WHEN 'succeeded' THEN 0 END,
       CASE WHEN final THEN run_s END, CASE WHEN final THEN run_s * 0.8 END,
       CASE WHEN final THEN 5e7 + run_s * 1e5 END,
       '10.213.0.' || (10 + i % 50)
FROM (SELECT *, state IN ('succeeded', 'failed') AS final
      FROM (SELECT i, md5('{prefix}' || i)::uuid::text AS uuid, {process_case} AS identifier,
                   CASE WHEN i <= {active} THEN (CASE WHEN r_state < 0.8 THEN 'started' ELSE 'accepted' END)
                        WHEN r_state < {FAILED_SHARE} THEN 'failed' ELSE 'succeeded' END AS state,
                   CASE WHEN i <= {active} THEN now_utc - r_age * interval '2 hours'
                        ELSE now_utc - interval '15 minutes' - r_age * interval '30 days' END AS created_at,
                   5 + r_run * 600 AS run_s
            FROM (SELECT i, random() AS r_proc, random() AS r_state, random() AS r_age, random() AS r_run,
                         (CURRENT_TIMESTAMP AT TIME ZONE 'UTC') AS now_utc
                  FROM generate_series(1, {int(rows)}) AS i) AS r) AS j) AS g;
INSERT INTO {prefix}requests (uuid, pid, operation, version, time_start, time_end, identifier, message,
    percent_done, status)
SELECT uuid, 1000 + sge_job_id::int % 30000, 'execute', '1.0.0', created_at + {local}, updated_at + {local},
       identifier, coalesce(message, 'running'), CASE WHEN finished_at IS NULL THEN 50 ELSE 100 END,
       CASE state WHEN 'accepted' THEN 1 WHEN 'started' THEN 2 WHEN 'succeeded' THEN 4 ELSE 5 END
FROM {prefix}gridengine_jobs;
INSERT INTO {prefix}requests (uuid, pid, operation, version, time_start, time_end, identifier, message,
    percent_done, status)
SELECT md5('{prefix}sync' || i)::uuid::text, 1000 + i, 'execute', '1.0.0', t + {local},
       t + interval '1 second' + {local}, 'hello', 'done', 100, 4
FROM (SELECT i, (CURRENT_TIMESTAMP AT TIME ZONE 'UTC') - interval '15 minutes' - random() * interval '30 days' AS t
      FROM generate_series(1, {int(rows) // 50}) AS i) AS s;
INSERT INTO {prefix}gridengine_documents (uuid, sha256, size, document)
SELECT uuid, md5(uuid) || md5(uuid || 'x'), 1200,
       '<wps:ExecuteResponse>' || repeat('<wps:Output>42</wps:Output>', 40) || '</wps:ExecuteResponse>'
FROM {prefix}gridengine_jobs WHERE state = 'succeeded';
"""


def drop_sql(prefix: str) -> str:
    """Drops every table of ``prefix`` in the current schema (the scratch tables, also a killed run's)."""
    pattern = prefix.replace("_", "\\_") + "%"
    return ("SET lock_timeout = '60s';\n"
            "DO $$DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables "
            f"WHERE schemaname = current_schema() AND tablename LIKE '{pattern}' "
            "LOOP EXECUTE format('DROP TABLE %I', t); END LOOP; END$$;\n"
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() "
            f"AND tablename LIKE '{pattern}';\n")


def list_rows(size_results: dict[int, dict[str, Any]], sizes: Sequence[int]) -> list[dict[str, str]]:
    """Table rows (figure, measured, counterpart, target, verdict) of the list queries at each size."""
    out = []
    small, large = sizes[0], sizes[-1]
    for name, (label, _, required) in LIST_QUERIES.items():
        with_ix = [size_results[s]["list"][name] for s in sizes]
        without = [size_results[s]["list_without_indexes"][name] for s in sizes]
        big = size_results[large]["list"][name]
        ok = plan_ok(big["plan"]["verdict"], required) and big["server_ms"] <= TARGET_LIST_SERVER_MS
        out.append({
            "figure": f"job list {label} ms, {small:,} / {large:,} rows",
            "measured": " / ".join(f"{q['ms']:.1f}" for q in with_ix)
            + f" (server {' / '.join(format(q['server_ms'], '.2f') for q in with_ix)}; {big['plan']['text']})",
            "counterpart": " / ".join(f"{q['ms']:.1f}" for q in without) + " without the list indexes (server "
            + " / ".join(format(q["server_ms"], ".2f") for q in without)
            + f"; {size_results[large]['list_without_indexes'][name]['plan']['text']})",
            "target": f"database <= {TARGET_LIST_SERVER_MS:.0f} at {large:,}, {required}" if required else "-",
            "verdict": ("ok" if ok else "MISSED") if required else "-",
        })
    return out


def cleanup_rows_for(size_results: dict[int, dict[str, Any]], sizes: Sequence[int]) -> list[dict[str, str]]:
    """Table rows of the clean-up passes at each size."""
    out = []
    small, large = sizes[0], sizes[-1]
    for key, label in (("cleanup_nothing", "nothing to delete"), ("cleanup_tenth", "deleting about 10 %")):
        passes = [size_results[s][key] for s in sizes]
        deleted = " / ".join(f"{p['summary']['jobs']:,}" for p in passes)
        big = size_results[large][key]
        phases = sorted(big["phases"].items(), key=lambda item: -item[1]["s"])[:3]
        seq = sorted({scan for q in big["queries"] for scan in q["scans"] if "Seq Scan" in scan})
        unhashed = sum(len(q["unhashed_subplans"]) for q in big["queries"])
        out.append({
            "figure": f"clean-up pass {label} s, {small:,} / {large:,} rows",
            "measured": " / ".join(f"{p['seconds']:.2f}" for p in passes) + " (database "
            + " / ".join(f"{sum(phase['s'] for phase in p['phases'].values()):.2f}" for p in passes)
            + f"; jobs deleted {deleted})",
            "counterpart": f"at {large:,}: " + ", ".join(f"{n} {p['s']:.2f} s ({p['calls']:,} calls)"
                                                          for n, p in phases)
            + f"; {', '.join(seq) or 'no seq scan'}" + (f"; {unhashed} unhashed subplans" if unhashed else ""),
            "target": "-",
            "verdict": "-",
        })
    return out


# --- the worker, on the web host ------------------------------------------------------------------


def _worker_engine(config: Any) -> Any:
    """A pooled engine, as the web tier's (PyWPS's) is, with a statement timeout (libpq's options)
    so that a runaway plan ends as an error."""
    import sqlalchemy as sa

    return sa.create_engine(config.database, connect_args={"options": f"-c statement_timeout={STATEMENT_TIMEOUT_S}s"})


class _Capture:
    """The SQL statements an engine runs (first of each text), with the store method that ran them."""

    def __init__(self, engine: Any) -> None:
        import sqlalchemy as sa

        self.engine, self.phase, self.seen = engine, "", {}
        sa.event.listen(engine, "before_cursor_execute", self._keep)

    def _keep(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        head = statement.lstrip().split(None, 1)[0].upper()
        if head in ("SELECT", "DELETE", "UPDATE") and not many and statement not in self.seen:
            self.seen[statement] = (self.phase, parameters)

    def stop(self) -> None:
        import sqlalchemy as sa

        sa.event.remove(self.engine, "before_cursor_execute", self._keep)

    def explain(self, statement: str, parameters: Any, analyze: bool = False) -> Any:
        """PostgreSQL's plan; with ``analyze`` (reads only) the query runs, and the plan has its times."""
        with self.engine.connect() as conn:
            cursor = conn.connection.driver_connection.cursor()
            cursor.execute(f"EXPLAIN ({'ANALYZE, ' if analyze else ''}FORMAT JSON) " + statement, parameters)
            plan = cursor.fetchone()[0]
            conn.rollback()
        return json.loads(plan) if isinstance(plan, str) else plan


def _timed(phases: dict[str, dict[str, float]], capture: _Capture, name: str,
           method: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        capture.phase = name
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            phase = phases.setdefault(name, {"s": 0.0, "calls": 0})
            phase["s"] += time.perf_counter() - start
            phase["calls"] += 1
            capture.phase = ""

    return call


def worker_prepare(args: argparse.Namespace) -> dict[str, Any]:
    """The scratch pywps.cfg (prefix, empty directories), the tables' DDL, the local time's offset."""
    import configparser
    import datetime as dt

    import sqlalchemy as sa
    from pywps_gridengine.jobs import JobStore
    from sqlalchemy.dialects import postgresql

    scratch = Path(args.scratch)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(args.config)
    for section in ("server", "logging", "gridengine"):
        if not parser.has_section(section):
            parser.add_section(section)
    dirs = {name: scratch / name for name in ("outputs", "workdir", "logs")}
    for path in dirs.values():
        path.mkdir(exist_ok=True)
    parser.set("logging", "prefix", args.prefix)
    parser.set("logging", "file", str(scratch / "pywps.log"))
    parser.set("server", "outputpath", str(dirs["outputs"]))
    parser.set("server", "workdir", str(dirs["workdir"]))
    parser.set("gridengine", "log_dir", str(dirs["logs"]))
    cfg = scratch / "pywps.cfg"
    with os.fdopen(os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        parser.write(handle)
    # The app's table definitions, compiled for PostgreSQL (an in-memory SQLite store only holds them).
    store = JobStore(sa.create_engine("sqlite://"), args.prefix)
    dialect = postgresql.dialect()
    tables, indexes, list_indexes = [], [], []
    for table in store.metadata.sorted_tables:
        tables.append(str(sa.schema.CreateTable(table).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda ix: str(ix.name)):
            ddl = str(sa.schema.CreateIndex(index, if_not_exists=True).compile(dialect=dialect)).strip()
            indexes.append(ddl)
            if [c.name for c in index.columns][-2:] == ["created_at", "uuid"]:  # the job list's (find's order)
                list_indexes.append({"name": index.name, "ddl": ddl})
    now = dt.datetime.now()
    offset = round((now - dt.datetime.now(dt.UTC).replace(tzinfo=None)).total_seconds() / 60) * 60
    return {"config": str(cfg), "workdir": str(dirs["workdir"]), "tables": tables, "indexes": indexes,
            "list_indexes": list_indexes, "jobs_table": store.table.name, "local_offset_s": offset}


def worker_list(args: argparse.Namespace) -> dict[str, Any]:
    """Each list query: median ms of ``runs`` (after one unmeasured run), rows returned, plan."""
    from pywps_gridengine import config as app_config
    from pywps_gridengine.jobs import JobStore, PageCursor

    config = app_config.load(args.config)
    engine = _worker_engine(config)
    store = JobStore(engine, config.prefix, create_table=False)  # reads only, as the inspector opens it
    capture = _Capture(engine)
    deep = (DEEP_PAGE - 1) * PAGE_SIZE
    # The cursor of page 2000: the last row of page 1999 (or the last row, at a size without that page).
    last = store.find(limit=1, offset=deep - 1) or store.find(limit=1, offset=max(0, args.rows - 1))
    out: dict[str, Any] = {}
    for name, (label, arguments, _) in LIST_QUERIES.items():
        arguments = dict(arguments, limit=PAGE_SIZE)
        if name == "cursor":
            arguments["after"] = PageCursor.of(last[0]) if last else None
        capture.seen.clear()
        capture.phase = name
        got = store.find(**arguments)
        samples = []
        for _ in range(args.runs):
            start = time.perf_counter()
            store.find(**arguments)
            samples.append((time.perf_counter() - start) * 1000)
        statement, parameters = next((s, p) for s, (_, p) in capture.seen.items() if "ORDER BY" in s)
        plan = capture.explain(statement, parameters)
        # The database's own time of the query (EXPLAIN ANALYZE), without the client, the network and TLS.
        server = [capture.explain(statement, parameters, analyze=True)[0]["Execution Time"] for _ in range(3)]
        out[name] = {"label": label, "ms": round(median(samples), 2), "samples_ms": [round(s, 2) for s in samples],
                     "server_ms": round(median(server), 2), "rows": len(got),
                     "plan": plan_verdict(plan, store.table.name)}
    # The operator's command, in this process: configuration, a new connection, its checks, the query, the table.
    import contextlib
    import io

    from pywps_gridengine import inspect_jobs

    samples = []
    for _ in range(3):
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            status = inspect_jobs.main(["--config", args.config, "list"])
        samples.append((time.perf_counter() - start) * 1000)
        if status != 0:
            raise RuntimeError(f"pywps-gridengine-jobs list exited {status}")
    out["inspector_list_ms"] = round(median(samples), 1)
    out["ogcapi"] = ogcapi_list(config, store, args.runs)
    capture.stop()
    return out


#: The OGC API job lists timed (GET /jobs with these parameters), label -> query string.
OGCAPI_QUERIES = {
    "newest 50": "limit=50",
    "running sleep jobs, 50": "status=running&processID=sleep&limit=50",
    "failed, 50": "status=failed&limit=50",
}


def ogcapi_list(config: Any, store: Any, runs: int) -> dict[str, Any]:
    """The OGC API's job list as the app answers GET /jobs (the query, the page's progress, the JSON), in ms;
    and the next page by its link (keyset: the same cost at any depth)."""
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    from pywps_gridengine.jobcontrol import Access, Caller, JobControl
    from pywps_gridengine.ogcapi import OgcApi

    control = JobControl(store, Access(job_list=True))
    api = OgcApi(lambda environ, start_response: [], {}, control, config)
    out: dict[str, Any] = {}
    for label, query in OGCAPI_QUERIES.items():
        def answer(query: str = query) -> dict[str, Any]:
            environ = EnvironBuilder(path="/ogcapi/jobs", query_string=query).get_environ()
            return json.loads(api.jobs(Request(environ), Caller()).get_data())
        first = answer()
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            answer()
            samples.append((time.perf_counter() - start) * 1000)
        out[label] = {"ms": round(median(samples), 2), "rows": len(first["jobs"])}
        following = next((link["href"] for link in first["links"] if link["rel"] == "next"), None)
        if label == "newest 50" and following:
            page = following.split("?", 1)[1]
            samples = []
            for _ in range(runs):
                start = time.perf_counter()
                answer(page)
                samples.append((time.perf_counter() - start) * 1000)
            out["next page of 50"] = {"ms": round(median(samples), 2), "rows": len(answer(page)["jobs"])}
    return out


def ogcapi_rows(size_results: dict[int, dict[str, Any]], sizes: Sequence[int]) -> list[dict[str, str]]:
    """Table rows of the OGC API's GET /jobs at each size (the app's answer, not only the query)."""
    out = []
    small, large = sizes[0], sizes[-1]
    labels = list(size_results[large]["list"].get("ogcapi", {}))
    for label in labels:
        measured = [size_results[s]["list"].get("ogcapi", {}).get(label) for s in sizes]
        if None in measured:
            continue
        out.append({"figure": f"OGC API GET /jobs {label} ms, {small:,} / {large:,} rows",
                    "measured": " / ".join(f"{m['ms']:.1f}" for m in measured)
                    + f" ({measured[-1]['rows']} jobs)",
                    "counterpart": "-", "target": "-", "verdict": "-"})
    return out


def worker_cleanup(args: argparse.Namespace) -> dict[str, Any]:
    """One clean-up pass as its command runs it, with the job store's methods timed and their SQL explained."""
    import sqlalchemy as sa
    from pywps_gridengine import config as app_config
    from pywps_gridengine.cleanup import Cleanup, cleanup_config, open_store

    checked = cleanup_config(app_config.load(args.config))
    store = open_store(checked)  # as the command opens it
    engine = store.engine
    timeout = f"SET statement_timeout = '{STATEMENT_TIMEOUT_S}s'"
    with engine.begin() as conn:  # the store's open connection, if its pool kept one
        conn.exec_driver_sql(timeout)
    sa.event.listen(engine, "connect", lambda dbapi, _record: (dbapi.cursor().execute(timeout), dbapi.commit()))
    capture = _Capture(engine)
    phases: dict[str, dict[str, float]] = {}
    for name in ("ended_candidates", "not_ended_since", "cleanup_rows", "delete_ended", "count_other_requests",
                 "delete_other_requests", "known", "workdirs", "open_local_requests", "db_now",
                 "require_requests_table"):
        setattr(store, name, _timed(phases, capture, name, getattr(store, name)))
    start = time.perf_counter()
    cleanup = Cleanup(store, checked.roots, args.days, out=lambda _text: None, err=lambda _text: None)
    summary = cleanup.run()
    seconds = time.perf_counter() - start
    capture.stop()
    queries = []
    for statement, (phase, parameters) in capture.seen.items():
        plan = capture.explain(statement, parameters)
        queries.append({"phase": phase, "sql": " ".join(statement.split())[:300], "scans": scans_of(plan, PREFIX),
                        "unhashed_subplans": plan_verdict(plan, "")["unhashed_subplans"]})
    return {"days": args.days, "seconds": round(seconds, 3), "summary": vars(summary),
            "phases": {k: {"s": round(v["s"], 3), "calls": int(v["calls"])} for k, v in phases.items()},
            "queries": queries}


def worker_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="rows.py worker")
    parser.add_argument("command", choices=("prepare", "list", "cleanup"))
    parser.add_argument("--config", required=True)
    parser.add_argument("--scratch", default="")
    parser.add_argument("--prefix", default=PREFIX)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--rows", type=int, default=0)
    parser.add_argument("--days", type=int, default=DAYS_NOTHING)
    args = parser.parse_args(argv)
    if args.scratch:  # so that the bench can end this process by its id if it is interrupted
        Path(args.scratch, "worker.pid").write_text(str(os.getpid()))
    commands = {"prepare": worker_prepare, "list": worker_list, "cleanup": worker_cleanup}
    print(json.dumps(commands[args.command](args)))
    return 0


# --- the bench's side -------------------------------------------------------------------------------


def measure(demo: Any, log: Callable[[str], None], error: type[Exception], *, root: Path, container_prefix: str,
            sizes: Iterable[int] = SIZES, runs: int = RUNS) -> dict[str, Any]:
    """The figure on the demo: scratch tables filled, measured and dropped at each size.

    ``demo`` is bench.py's Demo (``exec(host, cmd, user=, input_text=, timeout=, check=)``
    and ``settings``), ``container_prefix`` what its container names start with; ``error``
    the bench's error class, raised with what went wrong.
    """
    settings = demo.settings
    web, db, user = settings["web"], settings["db_host"], settings["service_user"]
    psql = ["runuser", "-u", "postgres", "--", "psql", "-d", settings["db_name"], "-X", "-q", "-At",
            "-v", "ON_ERROR_STOP=1"]
    source = Path(__file__).read_text(encoding="utf-8")
    python = "/opt/pywps/venv/bin/python"
    sizes = list(sizes)

    def sql(text: str, timeout: float = 1800) -> str:
        return demo.exec(db, psql, input_text=text, timeout=timeout).stdout

    def drop() -> None:
        left = sql(drop_sql(PREFIX), timeout=300).strip().splitlines()
        if left and left[-1].strip() != "0":
            raise error(f"scratch tables {PREFIX}* are still in database {settings['db_name']} on {db}")

    # The scratch tables' owner: the owner of the real job table (the schema owner), so that the web
    # tier's role gets its rights on them from that owner's default privileges, as on the real ones.
    scratch_pattern = PREFIX.replace("_", "\\_") + "%"
    owner = sql("SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() "
                f"AND tablename LIKE '%gridengine\\_jobs' AND tablename NOT LIKE '{scratch_pattern}' "
                "ORDER BY tablename LIMIT 1;").strip()
    if not owner.replace("_", "").isalnum():
        raise error(f"no job table in database {settings['db_name']} on {db} to take the schema owner from "
                    "(has the demo been converged?)")
    scratch = demo.exec(web, ["mktemp", "-d", "/tmp/pwgbench.XXXXXXXX"], user=user).stdout.strip()
    if not scratch.startswith("/tmp/pwgbench."):
        raise error(f"no scratch directory on {web}: {scratch!r}")

    def worker(command: str, *extra: str, timeout: float = 1800) -> dict[str, Any]:
        cmd = ["env", "PYTHONDONTWRITEBYTECODE=1", f"PYTHONPATH={scratch}/src", python, "-", "worker", command,
               "--scratch", scratch, *extra]
        done = demo.exec(web, cmd, user=user, input_text=source, timeout=timeout, check=False)
        if done.returncode != 0:
            raise error(f"rows worker {command} on {web} exited {done.returncode}: {done.stderr.strip()[-1200:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    results: dict[str, Any] = {"prefix": PREFIX, "owner": owner, "sizes": sizes, "runs": runs,
                               "page_size": PAGE_SIZE, "deep_page": DEEP_PAGE,
                               "days": {"nothing": DAYS_NOTHING, "tenth": DAYS_TENTH},
                               "app_code": "this checkout's app/src", "by_size": {}}
    try:
        log(f"rows: scratch directory {scratch} on {web}, tables {PREFIX}* (owner {owner}) in "
            f"{settings['db_name']} on {db}")
        drop()  # a killed run's
        copied = subprocess.run(["docker", "cp", str(root / "app" / "src"), f"{container_prefix}{web}:{scratch}/src"],
                                capture_output=True, text=True, check=False, timeout=120)
        if copied.returncode != 0:
            raise error(f"could not copy app/src to {web}: {copied.stderr.strip()}")
        prepared = worker("prepare", "--config", settings["config_file"])
        cfg, jobs_table = prepared["config"], prepared["jobs_table"]
        ddl = ";\n".join(prepared["tables"] + prepared["indexes"]) + ";\n"
        tables = ", ".join(t.split()[2] for t in prepared["tables"])
        list_indexes = prepared["list_indexes"]
        for size in sizes:
            started = time.monotonic()
            log(f"rows: {size:,} job rows: creating and filling {tables}")
            sql(f"BEGIN;\nSET LOCAL ROLE {owner};\n{ddl}"
                + fill_sql(PREFIX, size, prepared["workdir"], prepared["local_offset_s"])
                + f"COMMIT;\nANALYZE {tables};\n")
            counts = sql(f"SELECT state, count(*) FROM {jobs_table} GROUP BY state ORDER BY state;")
            log(f"rows: filled in {time.monotonic() - started:.1f} s: {' '.join(counts.split())}")
            one: dict[str, Any] = {"states": {k: int(v) for k, v in (line.split("|") for line in counts.split())}}
            log(f"rows: {size:,}: job list, {len(LIST_QUERIES)} queries x {runs} runs")
            one["list"] = worker("list", "--config", cfg, "--runs", str(runs), "--rows", str(size))
            sql(f"DROP INDEX {', '.join(ix['name'] for ix in list_indexes)};\nANALYZE {jobs_table};\n")
            log(f"rows: {size:,}: job list without the list indexes")
            one["list_without_indexes"] = worker("list", "--config", cfg, "--runs", str(runs), "--rows", str(size))
            sql(f"BEGIN;\nSET LOCAL ROLE {owner};\n" + "".join(ix["ddl"] + ";\n" for ix in list_indexes)
                + f"COMMIT;\nANALYZE {jobs_table};\n")
            for key, days in (("cleanup_nothing", DAYS_NOTHING), ("cleanup_tenth", DAYS_TENTH)):
                log(f"rows: {size:,}: clean-up pass, --days {days}")
                one[key] = worker("cleanup", "--config", cfg, "--days", str(days), timeout=3600)
                log(f"rows: {one[key]['seconds']:.2f} s, {one[key]['summary']['jobs']:,} jobs deleted")
            results["by_size"][size] = one
            drop()
    finally:
        # A worker this run started and an interruption left running: ended by its id (checked to be ours).
        demo.exec(web, ["sh", "-c", 'p=$(cat "$1/worker.pid" 2>/dev/null) && grep -qaF -- "$1" "/proc/$p/cmdline" '
                                    '&& kill "$p"', "sh", scratch], user=user, check=False)
        demo.exec(web, ["rm", "-rf", "--", scratch], check=False)
        drop()
        log(f"rows: scratch tables {PREFIX}* dropped, {scratch} on {web} removed")
    return results


def table_rows(results: dict[str, Any]) -> list[dict[str, str]]:
    """The bench table's rows of this figure (dicts of bench.Row's fields)."""
    if results.get("skipped"):
        return [{"figure": "job list and clean-up at 1,000 / 100,000 job rows", "measured": "skipped",
                 "counterpart": results["skipped"], "target": "-", "verdict": "-"}]
    by_size = {int(size): value for size, value in results["by_size"].items()}
    sizes = sorted(by_size)
    if not sizes:
        return []
    return list_rows(by_size, sizes) + ogcapi_rows(by_size, sizes) + cleanup_rows_for(by_size, sizes)


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        sys.exit(worker_main(sys.argv[2:]))
    print(__doc__)
    sys.exit(2)
