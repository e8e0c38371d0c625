"""./pwg bench's table (bench/bench.py rows_for): every figure's results become rows, the
figures of one run side by side (the database check and the growth figure in one table)."""

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import bench  # noqa: E402  (bench/ is not a package: its scripts run as files)


def converge(seconds: float, changed: int = 0) -> dict:
    return {"seconds": seconds, "changed": changed, "hosts": 6, "changed_tasks": []}


GROWTH = {
    "noop_before": converge(60), "noop_after": converge(140), "scale_out": converge(400, 300),
    "exec_hosts_before": ["exec1", "exec2"], "added_hosts": [f"exec{n}" for n in range(3, 9)],
    "containers_s": 12.0,
    "burst": {"jobs": 64, "inputs": "delay=1", "per_host": {f"exec{n}": 8 for n in range(1, 9)}, "accounted": 64,
              "jobs_per_min": 120.0, "succeeded": 64, "failed": 0, "lost": 0, "every_host": True},
    "scale_in": {"seconds": 90, "drain_s": 10, "containers_s": 5, "converge": converge(70),
                 "noop": converge(60, 1) | {"changed_tasks": ["common : Write the cluster hosts into /etc/hosts"]}},
}
DB = {"requests": 10_000, "asked": 10_000, "errors": 0,
      "before": {"table": "pywps_requests", "rows": 14, "table_bytes": 32768, "database_bytes": 7_880_039},
      "after": {"table": "pywps_requests", "rows": 14, "table_bytes": 32768, "database_bytes": 7_880_039}}


def test_database_check_and_growth_figure_share_one_table():
    rows = bench.rows_for({"db_growth": DB, "growth": GROWTH})
    figures = [row.figure for row in rows]
    assert figures[0] == "pywps_requests rows / kB, 10,000 discovery requests (no-cache)"
    assert rows[0].verdict == "ok"
    assert "converge, no change, 2 exec hosts s" in figures
    assert "converge, no change, 8 exec hosts s" in figures
    scale_in = rows[figures.index("scale back in 8 -> 2 s")]
    assert scale_in.verdict == "MISSED" and "Write the cluster hosts" in scale_in.counterpart


def test_a_growing_requests_table_is_missed():
    grown = DB | {"after": DB["after"] | {"rows": 10_014, "table_bytes": 2_000_000}}
    (row,) = bench.rows_for({"db_growth": grown})
    assert row.verdict == "MISSED" and row.measured.startswith("14 -> 10014")


def burst(jobs: int, per_min: float) -> dict:
    return {"jobs": jobs, "clients": 16, "jobs_per_min": per_min, "lost": 0, "failed": 0, "errors": 0,
            "refused": 0, "succeeded": jobs}


def test_throughput_shows_the_original_scheduler_beside_it():
    (row,) = bench.rows_for({"throughput": burst(200, 160.0), "throughput_original_scheduler": burst(40, 15.7)})
    assert row.measured.startswith("160 (lost 0")
    assert row.counterpart == "16 original scheduler (40 jobs, lost 0)"
    assert row.verdict == "ok"
    (alone,) = bench.rows_for({"throughput": burst(200, 90.0)})
    assert alone.counterpart == "-" and alone.verdict == "MISSED"
