"""Generated hostile requests against the job-control surface: OGC API – Processes
under /ogcapi and the WPS job operations (WPS 2.0 GetStatus/GetResult/Dismiss,
the WPS 1.0 vendor Dismiss and GetExecutions).

The hand-written corpus (tests/corpus) names the cases we know of; these tests
let hypothesis combine paths, methods, query parameters, headers and bodies we
did not think of. Whatever arrives: never a 5xx, and every refusal in the
protocol's own form (an RFC 7807 problem under /ogcapi, an OWS ExceptionReport
on /wps). The examples are derived from the test's name (derandomize), so a run
is repeatable and a failure is found again by the next run.
"""

from __future__ import annotations

import json
import urllib.parse

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from corpus import exception_of
from ogcschema import errors
from test_job_control import _cluster, execute_async
from test_scheduler_launcher import submit
from wpstest import uuid_from_status_location

SETTINGS = settings(
    max_examples=600,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Words of the API's own paths and parameters, mixed with anything at all: most
# generated requests then reach real handlers instead of stopping at the first 404.
WORDS = ["processes", "jobs", "results", "log", "execution", "conformance", "api", "hello", "sleep", "..", "."]
TEXT = st.text(max_size=40)
SEGMENT = st.one_of(st.sampled_from(WORDS), TEXT, st.sampled_from(["%00", "%2F", "%ZZ", "a" * 300]))
METHODS = st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"])
OGC_KEYS = ["limit", "processID", "status", "type", "datetime", "f", "response", "offset", "bbox", "jobId"]
QUERY_VALUE = st.one_of(
    TEXT,
    st.sampled_from(["0", "-1", "10001", "1e9", "nan", "accepted,running", "../..", "2026-01-01T00:00:00Z/..",
                     "../2026-13-45", "process", "json", "html", "raw", "document", ""]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
EXECUTE_BODY = st.fixed_dictionaries(
    {},
    optional={
        "inputs": st.one_of(JSON, st.dictionaries(st.sampled_from(["name", "x", "", "delay "]), JSON, max_size=3)),
        "outputs": st.one_of(JSON, st.dictionaries(st.sampled_from(["response", "output", ""]),
                                                   st.fixed_dictionaries({}, optional={"transmissionMode": JSON,
                                                                                       "format": JSON}))),
        "response": st.one_of(st.sampled_from(["raw", "document", "RAW", ""]), JSON),
        "subscriber": JSON,
    },
)
BODY = st.one_of(
    st.none(),
    EXECUTE_BODY.map(json.dumps),
    JSON.map(json.dumps),
    st.binary(max_size=200),
    st.sampled_from(['{"inputs": {"name": NaN}}', '{"inputs": {"name": Infinity}}', '{"a": 1, "a": 2}',
                     "[" * 2000, '{"inputs": {"name": "' + "x" * 100_000 + '"}}']),
)
ROUTES = [
    ("GET", "/ogcapi"), ("GET", "/ogcapi/"), ("GET", "/ogcapi/conformance"), ("GET", "/ogcapi/api"),
    ("GET", "/ogcapi/processes"), ("GET", "/ogcapi/processes/{pid}"), ("POST", "/ogcapi/processes/{pid}/execution"),
    ("POST", "/ogcapi/processes/{pid}/execution"), ("POST", "/ogcapi/processes/{pid}/execution"),
    ("GET", "/ogcapi/jobs"), ("GET", "/ogcapi/jobs"), ("GET", "/ogcapi/jobs/{jid}"), ("DELETE", "/ogcapi/jobs/{jid}"),
    ("GET", "/ogcapi/jobs/{jid}/results"), ("GET", "/ogcapi/jobs/{jid}/log"),
]
HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": st.sampled_from(["application/json", "text/xml", "application/x-www-form-urlencoded",
                                         "application/json; charset=latin-1", "", "*/*"]),
        "Prefer": st.one_of(st.sampled_from(["respond-async", "respond-sync", "wait=5", "return=minimal",
                                             "respond-async, wait=10", "handling=lenient"]), TEXT),
        "Accept": st.sampled_from(["application/json", "text/html", "application/xml", "*/*", "image/png"]),
        "X-Remote-User": TEXT,
    },
)


def mostly(draw, usual, unusual):
    """USUAL nine times in ten, else UNUSUAL: most drawn requests then get past the first check."""
    return draw(usual) if draw(st.integers(0, 9)) else draw(unusual)


def _ascii_header_value(value: str) -> str:
    """A header value a client can send: HTTP/1.1 carries bytes, werkzeug's test client latin-1."""
    return value.encode("latin-1", "replace").decode("latin-1").replace("\r", " ").replace("\n", " ")


def _problem_or_document(resp, method: str, where: str) -> None:
    assert resp.status_code < 500, (where, resp.status_code, resp.data[:2000])
    if resp.status_code >= 400 and method != "HEAD":
        assert resp.headers["Content-Type"].startswith("application/problem+json"), (where, resp.headers)
        body = json.loads(resp.data)
        assert not errors("exception", body), (where, body)
        assert "Traceback" not in resp.get_data(as_text=True)


def test_generated_ogcapi_requests_never_break_the_service(make_env, monkeypatch, tmp_path):
    _, client, _, _ = _cluster(make_env, monkeypatch, tmp_path, "[jobs]\njob_list = true\n")
    known = execute_async(client, "sleep", {"delay": "1"})
    wps1 = uuid_from_status_location(submit(client, "sleep", "delay=0"))
    job_ids = st.one_of(st.sampled_from([known, wps1, known.upper(), known + "x", "00000000-0000-0000-0000-000000000000"]),
                        SEGMENT)

    process_ids = st.sampled_from(["hello", "hello", "hello", "sleep", "sleep", "HELLO", "hello.xml", "%00", ".."])

    @st.composite
    def requests(draw):
        """A route of the API with its own method most of the time, its ids and parameters drawn."""
        usual, template = draw(st.sampled_from(ROUTES))
        method = mostly(draw, st.just(usual), METHODS)
        path = template.format(pid=urllib.parse.quote(draw(process_ids), safe="%"),
                               jid=urllib.parse.quote(draw(job_ids), safe="%"))
        if draw(st.integers(0, 9)) == 0:
            path += "/" + "/".join(urllib.parse.quote(s, safe="%") for s in draw(st.lists(SEGMENT, max_size=3)))
        return method, path

    @SETTINGS
    @given(
        request=requests(),
        query=st.dictionaries(st.one_of(st.sampled_from(OGC_KEYS), TEXT), QUERY_VALUE, max_size=4),
        headers=HEADERS,
        body=BODY,
    )
    def check(request, query, headers, body):
        method, path = request
        headers = {k: _ascii_header_value(v) for k, v in headers.items()}
        if method == "POST":
            headers.setdefault("Content-Type", "application/json")
        if method == "POST" and "/sleep/" in path:
            headers["Prefer"] = "respond-async"  # a synchronous sleep would run here for 10 s
        resp = client.open(path, method=method, query_string=query, data=body, headers=headers)
        _problem_or_document(resp, method, f"{method} {path} {query} {headers}")
        if resp.status_code < 300 and method != "HEAD" and resp.data:
            if resp.headers["Content-Type"].startswith("application/json"):
                json.loads(resp.data)

    check()


WPS_REQUESTS = ["GetStatus", "GetResult", "Dismiss", "GetExecutions", "getstatus", "DISMISS", "", "Execute"]
WPS_KEYS = ["service", "version", "request", "jobId", "JobID", "jobid", "identifier", "status", "maxFeatures",
            "startIndex", "acceptversions", "language"]


def _exception_report(resp, where: str) -> None:
    assert resp.status_code < 500, (where, resp.status_code, resp.data[:2000])
    if resp.status_code >= 400:
        code, _, _ = exception_of(resp.data)  # an OWS 1.1 or 2.0 ExceptionReport with its exceptionCode
        assert code, (where, resp.data[:2000])
        assert b"Traceback" not in resp.data


def test_generated_wps_job_operations_never_break_the_service(make_env, monkeypatch, tmp_path):
    _, client, _, _ = _cluster(make_env, monkeypatch, tmp_path, "[jobs]\njob_list = true\n")
    known = uuid_from_status_location(submit(client, "sleep", "delay=0"))
    values = st.one_of(QUERY_VALUE, st.sampled_from(["WPS", "wps", "1.0.0", "2.0.0", "2.0", "3.0.0", known,
                                                     known.upper(), "x" * 5000]),
                       st.sampled_from(WPS_REQUESTS))

    @SETTINGS
    @given(
        query=st.dictionaries(st.one_of(st.sampled_from(WPS_KEYS), TEXT), values, max_size=5),
        base=st.fixed_dictionaries({"service": st.just("WPS"), "version": st.sampled_from(["1.0.0", "2.0.0"]),
                                    "request": st.sampled_from(WPS_REQUESTS)}),
    )
    def kvp(query, base):
        params = {**base, **query}
        if str(params.get("request", "")).lower() == "execute":
            params["storeExecuteResponse"] = "true"  # never a synchronous sleep here
            params["status"] = "true"
        resp = client.get("/wps", query_string=params)
        _exception_report(resp, str(params))

    kvp()

    job_ids = st.one_of(st.sampled_from([known, known.upper(), ""]), TEXT, st.text(alphabet="<>&'\"]]>", max_size=8))

    @SETTINGS
    @given(
        operation=st.sampled_from(["GetStatus", "GetResult", "Dismiss", "Getstatus"]),
        version=st.sampled_from(["2.0.0", "1.0.0", "", "2.0.0\" extra=\"1"]),
        job_id=job_ids,
        namespace=st.sampled_from(["http://www.opengis.net/wps/2.0", "http://www.opengis.net/wps/1.0.0", "urn:x"]),
        wrap=st.booleans(),
    )
    def xml(operation, version, job_id, namespace, wrap):
        escaped = job_id.replace("&", "&amp;").replace("<", "&lt;") if wrap else job_id
        body = (f'<wps:{operation} service="WPS" version="{version}" xmlns:wps="{namespace}">'
                f"<wps:JobID>{escaped}</wps:JobID></wps:{operation}>")
        resp = client.post("/wps", data=body.encode("utf-8"), headers={"Content-Type": "text/xml"})
        _exception_report(resp, body)

    xml()


XML_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
PLAIN = st.text(alphabet=st.characters(whitelist_categories=("L", "N", "Zs", "P")), max_size=30)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


@st.composite
def execute_documents(draw):
    """A WPS 1.0 Execute document with drawn identifiers, inputs, data kinds and response form."""
    identifier = mostly(draw, st.sampled_from(["hello", "hello", "sleep"]), st.sampled_from(["HELLO", "nope", ""]) | XML_TEXT)
    inputs = []
    for _ in range(draw(st.integers(0, 3))):
        name = mostly(draw, st.sampled_from(["name", "delay"]), st.sampled_from(["x", ""]) | XML_TEXT)
        kind = mostly(draw, st.just("literal"), st.sampled_from(["complex", "bbox", "reference", "empty"]))
        value = _esc(mostly(draw, PLAIN | st.sampled_from(["1", "-1", "1e308", "NaN", "3601", "0x10", "0.5"]), XML_TEXT))
        data = {
            "literal": f"<wps:Data><wps:LiteralData>{value}</wps:LiteralData></wps:Data>",
            "complex": f'<wps:Data><wps:ComplexData mimeType="{value}">{value}</wps:ComplexData></wps:Data>',
            "bbox": f"<wps:Data><wps:BoundingBoxData><ows:LowerCorner>{value}</ows:LowerCorner></wps:BoundingBoxData>"
                    "</wps:Data>",
            "reference": f'<wps:Reference xlink:href="{value}"/>',
            "empty": "",
        }[kind]
        inputs.append(f"<wps:Input><ows:Identifier>{_esc(name)}</ows:Identifier>{data}</wps:Input>")
    store, status, lineage = (mostly(draw, st.sampled_from(["true", "false"]), st.sampled_from(["TRUE", "1", ""]))
                              for _ in range(3))
    forms = [
        "",
        f'<wps:ResponseForm><wps:ResponseDocument storeExecuteResponse="{store}" status="{status}" '
        f'lineage="{lineage}"><wps:Output asReference="{store}"><ows:Identifier>{_esc(draw(XML_TEXT))}'
        "</ows:Identifier></wps:Output></wps:ResponseDocument></wps:ResponseForm>",
        f"<wps:ResponseForm><wps:RawDataOutput><ows:Identifier>{_esc(draw(XML_TEXT))}</ows:Identifier>"
        "</wps:RawDataOutput></wps:ResponseForm>",
    ]
    form = draw(st.sampled_from(forms))
    if "sleep" in identifier.lower():  # never a synchronous sleep here (five times 2 s by default)
        form = ('<wps:ResponseForm><wps:ResponseDocument storeExecuteResponse="true" status="true">'
                "</wps:ResponseDocument></wps:ResponseForm>")
    version = mostly(draw, st.just("1.0.0"), st.sampled_from(["2.0.0", ""]))
    return (f'<wps:Execute service="WPS" version="{version}" xmlns:wps="http://www.opengis.net/wps/1.0.0" '
            'xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink">'
            f"<ows:Identifier>{_esc(identifier)}</ows:Identifier><wps:DataInputs>{''.join(inputs)}</wps:DataInputs>"
            f"{form}</wps:Execute>")


def test_generated_execute_documents_never_break_the_service(make_env, monkeypatch, tmp_path):
    _, client, _, _ = _cluster(make_env, monkeypatch, tmp_path, "[jobs]\njob_list = true\n")

    @SETTINGS
    @given(document=execute_documents())
    def check(document):
        resp = client.post("/wps", data=document.encode("utf-8"), headers={"Content-Type": "text/xml"})
        _exception_report(resp, document)

    check()
