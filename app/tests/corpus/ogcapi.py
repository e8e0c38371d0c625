"""OGC API – Processes (``/ogcapi``): malformed bodies, unknown ids, wrong types, paging parameters.

Every refusal is an RFC 7807 problem document with the status OGC 18-062r2
gives: 404 with the standard's exception type for an unknown process or job,
400 for a request that cannot be read or does not fit the process, 415 for a
body that is not JSON, 405 for a method the resource does not answer. A
preference of the Prefer header the server does not know is ignored (RFC
7240), so a request with one is answered as without it. ``code`` is the
problem's ``type``.
"""

from __future__ import annotations

from . import Case

EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
BLANK = "about:blank"
JSON = (("Content-Type", "application/json"),)
NO_JOB = "00000000-0000-4000-8000-000000000000"


def execute(name: str, body: bytes, status: int = 400, code: str | None = BLANK, process: str = "hello",
            headers: tuple[tuple[str, str], ...] = JSON, note: str = "") -> Case:
    return Case(name, "ogcapi", status, code, method="POST", path=f"/ogcapi/processes/{process}/execution",
                body=body, headers=headers, note=note)


def get(name: str, path: str, status: int, code: str | None = BLANK, query: str = "", note: str = "") -> Case:
    return Case(name, "ogcapi", status, code, path=path, query=query, note=note)


CASES = [
    get("ogcapi_landing", "/ogcapi/", 200, None),
    get("ogcapi_conformance", "/ogcapi/conformance", 200, None),
    get("ogcapi_processes", "/ogcapi/processes", 200, None),
    get("ogcapi_unknown_process", "/ogcapi/processes/nope", 404, EXC + "no-such-process"),
    get("ogcapi_unknown_process_markup", "/ogcapi/processes/%3Cscript%3E", 404, EXC + "no-such-process"),
    get("ogcapi_unknown_job", f"/ogcapi/jobs/{NO_JOB}", 404, EXC + "no-such-job"),
    get("ogcapi_unknown_job_results", f"/ogcapi/jobs/{NO_JOB}/results", 404, EXC + "no-such-job"),
    get("ogcapi_unknown_job_log", f"/ogcapi/jobs/{NO_JOB}/log", 404, EXC + "no-such-job"),
    get("ogcapi_job_id_sql", "/ogcapi/jobs/%27%20OR%201%3D1%20--", 404, EXC + "no-such-job"),
    Case("ogcapi_job_id_nul", "ogcapi", 404, EXC + "no-such-job", path="/ogcapi/jobs/a%00b", where="app",
         note="behind nginx a NUL in a path is nginx's 400 (traversal_nul)"),
    get("ogcapi_unknown_resource", "/ogcapi/collections", 404),
    Case("ogcapi_dismiss_unknown_job", "ogcapi", 404, EXC + "no-such-job", method="DELETE",
         path=f"/ogcapi/jobs/{NO_JOB}"),
    Case("ogcapi_dismiss_not_a_job", "ogcapi", 404, EXC + "no-such-job", method="DELETE", path="/ogcapi/jobs/x"),
    Case("ogcapi_delete_a_process", "ogcapi", 405, None, method="DELETE", path="/ogcapi/processes/hello"),
    Case("ogcapi_put_jobs", "ogcapi", 405, None, method="PUT", path="/ogcapi/jobs",
         note="nginx or the app: 405 either way"),
    get("ogcapi_execute_by_get", "/ogcapi/processes/hello/execution", 405),
    get("ogcapi_jobs_limit_zero", "/ogcapi/jobs", 400, query="limit=0"),
    get("ogcapi_jobs_limit_huge", "/ogcapi/jobs", 400, query="limit=99999999999999999999"),
    get("ogcapi_jobs_limit_text", "/ogcapi/jobs", 400, query="limit=ten"),
    get("ogcapi_jobs_bad_status", "/ogcapi/jobs", 400, query="status=sleeping"),
    get("ogcapi_jobs_bad_datetime", "/ogcapi/jobs", 400, query="datetime=yesterday"),
    get("ogcapi_jobs_backwards_interval", "/ogcapi/jobs", 400,
        query="datetime=2020-01-02T00:00:00Z/2020-01-01T00:00:00Z"),
    get("ogcapi_jobs_forged_page", "/ogcapi/jobs", 400, query="page=Jyk7IERST1AgVEFCTEUgeDsgLS0"),
    get("ogcapi_jobs_unknown_parameter", "/ogcapi/jobs", 400, query="sort=evil"),
    get("ogcapi_jobs_min_duration", "/ogcapi/jobs", 400, query="minDuration=10",
        note="not supported: said so rather than ignored"),
    execute("ogcapi_execute_truncated_json", b'{"inputs": {"name": '),
    execute("ogcapi_execute_array", b"[1, 2]"),
    execute("ogcapi_execute_null", b"null"),
    execute("ogcapi_execute_nan", b'{"inputs": {"name": NaN}}'),
    execute("ogcapi_execute_inputs_list", b'{"inputs": ["name"]}'),
    execute("ogcapi_execute_unknown_input", b'{"inputs": {"nom": "x"}}'),
    execute("ogcapi_execute_unknown_output", b'{"outputs": {"nope": {}}}'),
    execute("ogcapi_execute_object_for_literal", b'{"inputs": {"name": {"a": 1}}}'),
    execute("ogcapi_execute_array_for_literal", b'{"inputs": {"name": [[1]]}}'),
    execute("ogcapi_execute_wrong_type", b'{"inputs": {"delay": "soon"}}', process="sleep"),
    execute("ogcapi_execute_out_of_range", b'{"inputs": {"delay": -1}}', process="sleep"),
    execute("ogcapi_execute_bad_response", b'{"response": "xml"}'),
    execute("ogcapi_execute_bad_transmission", b'{"outputs": {"output": {"transmissionMode": "carrier"}}}'),
    execute("ogcapi_execute_subscriber", b'{"subscriber": {"successUri": "http://127.0.0.1/"}}'),
    execute("ogcapi_execute_deep_nesting", b"[" * 50000),
    execute("ogcapi_execute_not_utf8", b'{"inputs": {"name": "\xff\xfe"}}'),
    execute("ogcapi_execute_control_character", b'{"inputs": {"name": "a\\u0001b"}}'),
    execute("ogcapi_execute_href_for_literal", b'{"inputs": {"name": {"href": "http://127.0.0.1/"}}}'),
    execute("ogcapi_execute_unknown_process", b"{}", 404, EXC + "no-such-process", process="nope"),
    execute("ogcapi_execute_xml_body", b"<x/>", 415, headers=(("Content-Type", "text/xml"),)),
    execute("ogcapi_execute_unknown_preference", b'{"inputs": {"name": "x"}}', 200, None,
            headers=(*JSON, ("Prefer", "handling=strict, return=minimal, x-evil=1")),
            note="RFC 7240: a preference the server does not know is ignored"),
]
