"""./pwg bench's rows figure (bench/rows.py): the parts that need no demo: reading PostgreSQL's
EXPLAIN (FORMAT JSON) plans, the median, the fill and drop SQL it sends, the table rows it prints."""

import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import rows  # noqa: E402  (bench/ is not a package: its scripts run as files)

TABLE = "pwgbench_gridengine_jobs"


def scan(node_type: str, **more) -> dict:
    return {"Node Type": node_type, "Relation Name": TABLE, **more}


def limit(*plans: dict) -> list:
    """A plan document as EXPLAIN (FORMAT JSON) gives it: a list of one object with its Plan."""
    return [{"Plan": {"Node Type": "Limit", "Plans": list(plans)}}]


def test_an_ordered_index_scan_is_an_index_verdict():
    plan = limit(scan("Index Scan", **{"Index Name": "ix_pwgbench_gridengine_jobs_created",
                                       "Scan Direction": "Backward"}))
    assert rows.plan_verdict(plan, TABLE) == {
        "verdict": "index", "text": "Index Scan Backward ix_pwgbench_gridengine_jobs_created", "unhashed_subplans": []}


def test_a_seq_scan_and_sort():
    plan = limit({"Node Type": "Sort", "Plans": [scan("Seq Scan")]})
    verdict = rows.plan_verdict(plan, TABLE)
    assert (verdict["verdict"], verdict["text"]) == ("seq scan", "Seq Scan + Sort")


def test_a_bitmap_scan_then_a_sort_names_the_index():
    plan = limit({"Node Type": "Sort", "Plans": [scan("Bitmap Heap Scan", Plans=[
        {"Node Type": "Bitmap Index Scan", "Index Name": "ix_pwgbench_gridengine_jobs_state"}])]})
    verdict = rows.plan_verdict(plan, TABLE)
    assert verdict["verdict"] == "index + sort"
    assert verdict["text"] == "Bitmap Heap Scan + Bitmap Index Scan ix_pwgbench_gridengine_jobs_state + Sort"


def test_a_plan_of_other_tables_only():
    plan = [{"Plan": {"Node Type": "Result"}}]
    assert rows.plan_verdict(plan, TABLE)["verdict"] == "none"


def test_hashed_and_unhashed_subplans():
    sub = {"Node Type": "Seq Scan", "Relation Name": "pwgbench_stored_requests", "Parent Relationship": "SubPlan",
           "Subplan Name": "SubPlan 1"}
    hashed = [{"Plan": {"Node Type": "Seq Scan", "Relation Name": "pwgbench_requests",
                        "Filter": "(NOT (hashed SubPlan 1))", "Plans": [sub]}}]
    plain = [{"Plan": {"Node Type": "Seq Scan", "Relation Name": "pwgbench_requests",
                       "Filter": "(NOT (SubPlan 1))", "Plans": [sub]}}]
    assert rows.plan_verdict(hashed, "")["unhashed_subplans"] == []
    assert rows.plan_verdict(plain, "")["unhashed_subplans"] == ["SubPlan 1"]
    assert rows.scans_of(plain, "pwgbench_") == ["requests: Seq Scan", "stored_requests: Seq Scan"]


def test_plan_nodes_are_depth_first():
    plan = {"Plan": {"Node Type": "A", "Plans": [{"Node Type": "B", "Plans": [{"Node Type": "C"}]},
                                                  {"Node Type": "D"}]}}
    assert [n["Node Type"] for n in rows.plan_nodes(plan)] == ["A", "B", "C", "D"]


@pytest.mark.parametrize(("verdict", "required", "ok"), [
    ("index", "index", True), ("index + sort", "index", False), ("seq scan", "index", False),
    ("index + sort", "no seq scan", True), ("seq scan", "no seq scan", False), ("seq scan", "", True),
])
def test_plan_requirements(verdict, required, ok):
    assert rows.plan_ok(verdict, required) is ok


def test_median():
    assert rows.median([3.0, 1.0, 2.0]) == 2.0
    assert rows.median([4.0, 1.0, 2.0, 3.0]) == 2.5
    with pytest.raises(ValueError, match="no samples"):
        rows.median([])


def test_fill_sql_fills_the_prefixed_tables_and_refuses_a_bad_prefix():
    text = rows.fill_sql("pwgbench_", 100_000, "/tmp/pwgbench.x/workdir", 3600)
    for table in ("gridengine_jobs", "requests", "gridengine_documents"):
        assert f"INSERT INTO pwgbench_{table} " in text
    assert "generate_series(1, 100000)" in text and "generate_series(1, 2000)" in text  # jobs, synchronous requests
    assert "WHEN i <= 300 THEN" in text  # the active jobs: a few hundred
    assert "interval '3600 seconds'" in text  # PyWPS's local time
    assert "pywps_" not in text.replace("pywps_process_", "")  # never the real tables
    assert "WHEN i <= 50 THEN" in rows.fill_sql("pwgbench_", 1_000, "/w", 0)
    with pytest.raises(ValueError, match="not a table prefix"):
        rows.fill_sql("x; DROP TABLE pywps_requests; --", 10, "/w", 0)


def test_drop_sql_drops_only_the_prefix():
    text = rows.drop_sql("pwgbench_")
    assert "LIKE 'pwgbench\\_%'" in text and "pywps" not in text


def list_result(ms: float, verdict: str, text: str) -> dict:
    return {"ms": ms, "server_ms": ms / 10, "plan": {"verdict": verdict, "text": text, "unhashed_subplans": []}}


def cleanup_result(seconds: float, jobs: int) -> dict:
    return {"seconds": seconds, "summary": {"jobs": jobs},
            "phases": {"delete_ended": {"s": seconds * 0.9, "calls": jobs}, "ended_candidates": {"s": 0.1, "calls": 1}},
            "queries": [{"scans": ["requests: Seq Scan"], "unhashed_subplans": []},
                        {"scans": ["gridengine_jobs: Index Scan pwgbench_gridengine_jobs_pkey"],
                         "unhashed_subplans": ["SubPlan 2"]}]}


def size_result(ms: float, verdict: str) -> dict:
    good = {name: list_result(ms, verdict, "Index Scan Backward ix") for name in rows.LIST_QUERIES}
    bad = {name: list_result(ms * 10, "seq scan", "Seq Scan + Sort") for name in rows.LIST_QUERIES}
    return {"list": good, "list_without_indexes": bad, "cleanup_nothing": cleanup_result(0.5, 0),
            "cleanup_tenth": cleanup_result(30.0, 10_000)}


def test_table_rows_of_a_run():
    # As read back from the JSON file: sizes are strings there.
    table = rows.table_rows({"by_size": {"1000": size_result(1.0, "index"), "100000": size_result(60.0, "index")}})
    assert len(table) == len(rows.LIST_QUERIES) + 2
    newest = table[0]
    assert newest["figure"] == "job list newest 50 ms, 1,000 / 100,000 rows"
    assert newest["measured"] == "1.0 / 60.0 (server 0.10 / 6.00; Index Scan Backward ix)"
    assert newest["counterpart"].startswith("10.0 / 600.0 without the list indexes (server 1.00 / 60.00; Seq Scan")
    assert newest["target"] == "database <= 10 at 100,000, index"
    assert newest["verdict"] == "ok"  # the database's 6 ms is judged, not the client's 60
    tenth = table[-1]
    assert tenth["measured"] == "30.00 / 30.00 (database 27.10 / 27.10; jobs deleted 10,000 / 10,000)"
    assert "delete_ended 27.00 s (10,000 calls)" in tenth["counterpart"]
    assert "requests: Seq Scan" in tenth["counterpart"] and "1 unhashed subplans" in tenth["counterpart"]


def test_table_rows_judge_plan_and_database_time_at_the_larger_size():
    def verdicts(small: dict, large: dict) -> dict:
        return {row["figure"]: row["verdict"] for row in rows.table_rows({"by_size": {1000: small, 100000: large}})}

    newest = "job list newest 50 ms, 1,000 / 100,000 rows"
    offset = f"job list page 2,000 of {rows.PAGE_SIZE} by offset ms, 1,000 / 100,000 rows"
    assert verdicts(size_result(1.0, "seq scan"), size_result(1.0, "index"))[newest] == "ok"
    assert verdicts(size_result(1.0, "index"), size_result(1.0, "seq scan"))[newest] == "MISSED"
    assert verdicts(size_result(1.0, "index"), size_result(200.0, "index"))[newest] == "MISSED"  # database 20 ms
    assert verdicts(size_result(1.0, "index"), size_result(1.0, "seq scan"))[offset] == "-"  # no target


def test_table_rows_of_a_skipped_run():
    table = rows.table_rows({"skipped": "not measured with --url (it needs the demo's database)"})
    assert [(row["measured"], row["counterpart"]) for row in table] == [
        ("skipped", "not measured with --url (it needs the demo's database)")]
