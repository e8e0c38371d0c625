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


# hey 0.1.4's summary, abridged to the lines parse_hey reads and a few around them.
HEY = """
Summary:
  Total:\t10.0031 secs
  Slowest:\t0.0810 secs
  Fastest:\t0.0002 secs
  Average:\t0.0011 secs
  Requests/sec:\t998.4902

Latency distribution:
  10% in 0.0004 secs
  25% in 0.0005 secs
  50% in 0.0007 secs
  75% in 0.0009 secs
  90% in 0.0013 secs
  95% in 0.0021 secs
  99% in 0.0123 secs

Status code distribution:
  [200]\t9980 responses
  [503]\t5 responses

Error distribution:
  [3]\tGet http://10.213.0.10:80/wps: dial tcp 10.213.0.10:80: connect: connection refused
"""


def test_hey_summary_is_read():
    figures = bench.parse_hey(HEY)
    assert figures["rps"] == 998.4902
    assert (figures["p50_ms"], figures["p99_ms"]) == (0.7, 12.3)
    assert figures["statuses"] == {200: 9980, 503: 5}
    assert (figures["non_2xx"], figures["errors"]) == (5, 3)


def test_hey_without_figures_is_an_error():
    try:
        bench.parse_hey("Error: invalid argument\n")
    except bench.BenchError as e:
        assert "no figures" in str(e)
    else:
        raise AssertionError("parse_hey accepted a summary without figures")


def wrk_figures(rps: float, p99: float) -> dict:
    return {"rps": rps, "p50_ms": 0.5, "p99_ms": p99, "non_2xx": 0, "connect_errors": 0, "read_errors": 0,
            "timeouts": 0, "cache_status": "X-Cache-Status: HIT"}


def test_discovery_p99_target_is_judged_at_the_offered_rate_not_at_saturation():
    rate = bench.parse_hey(HEY.replace("[503]\t5 responses", "").split("Error distribution:")[0])
    rate["offered_rps"] = 1000
    disc = {"GetCapabilities_cached": wrk_figures(27000, 370.0), "GetCapabilities_uncached": wrk_figures(120, 210.0),
            "DescribeProcess_cached": wrk_figures(28000, 365.0), "DescribeProcess_uncached": wrk_figures(96, 230.0),
            "GetCapabilities_rate": rate}
    rows = bench.rows_for({"discovery": disc})
    by_name = {row.figure: row for row in rows}
    assert by_name["GetCapabilities req/s (cache: X-Cache-Status: HIT)"].verdict == "ok"
    assert by_name["GetCapabilities p50 / p99 ms at that rate (wrk)"].verdict == "-"
    at_rate = by_name["GetCapabilities p50 / p99 ms at 1,000 req/s offered (hey)"]
    assert at_rate.verdict == "ok" and at_rate.measured == "0.7 / 12.3 (998 req/s)"
    # Errors, a slow tail or a rate the service could not keep up are each a miss.
    for worse in ({"errors": 2}, {"p99_ms": 51.0}, {"rps": 700.0}):
        disc["GetCapabilities_rate"] = rate | worse
        row = {r.figure: r for r in bench.rows_for({"discovery": disc})}[at_rate.figure]
        assert row.verdict == "MISSED", worse
    assert not any("DescribeProcess" in f and "hey" in f for f in by_name)  # no hey figure: no row


def test_container_cpu_is_read_from_cgroup_v1_and_v2(tmp_path):
    v1 = tmp_path / "cpuacct" / "docker" / "abc"
    v1.mkdir(parents=True)
    (v1 / "cpuacct.usage").write_text("2500000000\n")
    assert bench.cgroup_cpu_s("abc", tmp_path) == 2.5
    v2 = tmp_path / "system.slice" / "docker-def.scope"
    v2.mkdir(parents=True)
    (v2 / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n")
    assert bench.cgroup_cpu_s("def", tmp_path) == 1.5
    assert bench.cgroup_cpu_s("nowhere", tmp_path) is None


def test_burst_cpu_row_names_the_bound():
    cpu = {"jobs": 200, "wall_s": 150.0, "cpus": 2, "by_host_s": {"exec1": 110.0, "exec2": 108.0, "web1": 60.0},
           "total_s": 278.0, "per_job_s": 1.39, "machine_busy_pct": 98.0, "cpu_bound_jobs_per_min": 86.0}
    (row,) = bench.rows_for({"throughput_cpu": cpu})
    assert row.measured == "1.39 (exec1 0.55, exec2 0.54, web1 0.30)"
    assert row.counterpart == "2 CPUs 98 % busy: at most 86 jobs/min"
