"""Job control without a cluster: dismiss on every protocol, WPS 2.0 GetStatus/GetResult, the job lists,
OGC API – Processes over the same jobs, identity and ownership.

Jobs are submitted through the app in scheduler mode with Grid Engine's part
replaced (a recording submitter, a recording deletion); the launcher runs in
this process as sge_execd would start it. What Grid Engine does with a
deletion is proven against the real cluster (molecule scenario ``default``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree
from ogcschema import errors
from test_scheduler_launcher import RecordingSubmitter, run_on_exec_host, submit
from wpstest import app_client, status_of, status_text, uuid_from_status_location

from pywps_gridengine import jobcontrol
from pywps_gridengine.jobs import JobState, JobStore
from pywps_gridengine.scheduler import GridEngineScheduler

WPS2 = "{http://www.opengis.net/wps/2.0}"
OWS1 = "{http://www.opengis.net/ows/1.1}"
OWS2 = "{http://www.opengis.net/ows/2.0}"
EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"


@pytest.fixture
def cluster(make_env, monkeypatch, tmp_path):
    """The app in scheduler mode, with the job list on; Grid Engine's submission and deletion recorded."""
    return _cluster(make_env, monkeypatch, tmp_path, "[jobs]\njob_list = true\n")


def _cluster(make_env, monkeypatch, tmp_path, jobs_section):
    monkeypatch.chdir(tmp_path)
    env = make_env(mode="scheduler", extra="[gridengine]\nqueue = wps.q\n\n" + jobs_section)
    submitter = RecordingSubmitter()
    monkeypatch.setattr(GridEngineScheduler, "submitter", submitter)
    deleted: list[str] = []
    monkeypatch.setattr(jobcontrol, "drmaa_terminate", deleted.append)
    return env, app_client(env.config), submitter, deleted


def store(env) -> JobStore:
    return JobStore.for_config(env.config)


def valid(name, document):
    problems = errors(name, document)
    assert not problems, (problems, document)
    return document


def ogc_json(resp, status=200, schema=None):
    assert resp.status_code == status, resp.data
    body = json.loads(resp.data)
    if schema:
        valid(schema, body)
    return body


def problem(resp, status, type_=None):
    assert resp.status_code == status, resp.data
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    body = valid("exception", json.loads(resp.data))
    if type_:
        assert body["type"] == type_
    return body


def wps2(resp, status=200):
    assert resp.status_code == status, resp.data
    return etree.fromstring(resp.data)


def execute_async(client, identifier="sleep", inputs=None, headers=None):
    resp = client.post(f"/ogcapi/processes/{identifier}/execution", data=json.dumps({"inputs": inputs or {}}),
                       headers={"Content-Type": "application/json", "Prefer": "respond-async", **(headers or {})})
    body = ogc_json(resp, 201, "statusInfo")
    assert resp.headers["Location"].endswith(f"/ogcapi/jobs/{body['jobID']}")
    assert resp.headers["Preference-Applied"] == "respond-async"
    return body["jobID"]


# -- dismiss ----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["wps2-kvp", "wps2-xml", "wps1", "ogcapi"])
def test_dismiss_stops_the_grid_engine_job_and_says_dismissed(cluster, protocol):
    env, client, _, deleted = cluster
    uuid = uuid_from_status_location(submit(client, "sleep", "delay=30"))
    if protocol == "wps2-kvp":
        root = wps2(client.get("/wps", query_string={"service": "WPS", "version": "2.0.0", "request": "Dismiss",
                                                    "jobId": uuid}))
        assert root.tag == f"{WPS2}StatusInfo" and root.findtext(f"{WPS2}Status") == "Dismissed"
    elif protocol == "wps2-xml":
        body = (f'<wps:Dismiss service="WPS" version="2.0.0" xmlns:wps="http://www.opengis.net/wps/2.0">'
                f"<wps:JobID>{uuid}</wps:JobID></wps:Dismiss>")
        root = wps2(client.post("/wps", data=body, headers={"Content-Type": "text/xml"}))
        assert root.findtext(f"{WPS2}Status") == "Dismissed"
    elif protocol == "wps1":
        resp = client.get("/wps", query_string={"service": "WPS", "version": "1.0.0", "request": "Dismiss",
                                                "jobId": uuid})
        assert resp.status_code == 200, resp.data
        root = etree.fromstring(resp.data)
        assert status_of(root) == "ProcessFailed" and "dismissed by the client" in status_text(root)
    else:
        body = ogc_json(client.delete(f"/ogcapi/jobs/{uuid}"), 200, "statusInfo")
        assert body["status"] == "dismissed" and body["jobID"] == uuid
    assert deleted == ["4242"]
    job = store(env).get(uuid)
    assert job.state == JobState.DISMISSED and job.finished_at is not None
    on_disk = env.status_doc(uuid)  # the WPS 1.0 status document the client polls
    assert status_of(on_disk) == "ProcessFailed" and "dismissed by the client" in status_text(on_disk)
    # twice is harmless: the same answer, Grid Engine not asked again
    ogc = ogc_json(client.delete(f"/ogcapi/jobs/{uuid}"), 200, "statusInfo")
    assert ogc["status"] == "dismissed" and deleted == ["4242"]


def test_a_dismissed_jobs_launcher_is_fenced_off(cluster, monkeypatch):
    env, client, submitter, _ = cluster
    uuid = uuid_from_status_location(submit(client, "sleep", "delay=0"))
    ogc_json(client.delete(f"/ogcapi/jobs/{uuid}"), 200)
    run_on_exec_host(env, submitter.specs[0], monkeypatch)  # Grid Engine started it before the deletion landed
    assert store(env).get(uuid).state == JobState.DISMISSED
    assert "dismissed by the client" in status_text(env.status_doc(uuid))


def test_dismissing_a_finished_job_keeps_its_result(cluster, monkeypatch):
    env, client, submitter, deleted = cluster
    uuid = uuid_from_status_location(submit(client, "sleep", "delay=0"))
    assert run_on_exec_host(env, submitter.specs[0], monkeypatch) == 0
    body = problem(client.delete(f"/ogcapi/jobs/{uuid}"), 409)
    assert body["jobStatus"] == "successful"
    report = wps2(client.get("/wps", query_string={"service": "WPS", "version": "2.0.0", "request": "Dismiss",
                                                   "jobId": uuid}), 400)
    assert report.tag == f"{OWS2}ExceptionReport"
    assert report.find(f"{OWS2}Exception").get("exceptionCode") == "InvalidParameterValue"
    assert deleted == [] and store(env).get(uuid).state == JobState.SUCCEEDED


@pytest.mark.parametrize("job_id", ["0c3a5a2e-4b8e-4f51-9d3e-2f2b8f4f7a10", "not-a-job", "'; DROP TABLE x; --",
                                    "../../etc/passwd", "%00", "x" * 5000])
def test_unknown_jobs_are_the_standards_errors(cluster, job_id):
    _, client, _, deleted = cluster
    kind = None if "/" in job_id else EXC + "no-such-job"  # a path of other segments is no job's resource at all
    problem(client.delete(f"/ogcapi/jobs/{job_id}"), 404, kind)
    problem(client.get(f"/ogcapi/jobs/{job_id}"), 404, kind)
    problem(client.get(f"/ogcapi/jobs/{job_id}/results"), 404, kind)
    for request in ("GetStatus", "GetResult", "Dismiss"):
        report = wps2(client.get("/wps", query_string={"service": "WPS", "version": "2.0.0", "request": request,
                                                       "jobId": job_id}), 400)
        assert report.find(f"{OWS2}Exception").get("exceptionCode") == "NoSuchJob"
    assert deleted == []


def test_job_operations_without_a_job_id_are_refused(cluster):
    _, client, _, _ = cluster
    for request in ("GetStatus", "GetResult", "Dismiss"):
        report = wps2(client.get("/wps", query_string={"service": "WPS", "version": "2.0.0", "request": request}),
                      400)
        assert report.find(f"{OWS2}Exception").get("exceptionCode") == "MissingParameterValue"
    resp = client.get("/wps?service=WPS&version=2.0.0&request=GetStatus&jobId=a&JOBID=b")
    assert resp.status_code == 400


# -- WPS 2.0 GetStatus and GetResult --------------------------------------------------------------


def test_wps2_get_status_and_result_follow_the_job(cluster, monkeypatch):
    env, client, submitter, _ = cluster
    uuid = uuid_from_status_location(submit(client, "sleep", "delay=0"))
    query = {"service": "WPS", "version": "2.0.0", "jobId": uuid}
    root = wps2(client.get("/wps", query_string={**query, "request": "GetStatus"}))
    assert root.findtext(f"{WPS2}JobID") == uuid and root.findtext(f"{WPS2}Status") == "Accepted"
    report = wps2(client.get("/wps", query_string={**query, "request": "GetResult"}), 400)
    assert report.find(f"{OWS2}Exception").get("exceptionCode") == "ResultNotReady"
    assert run_on_exec_host(env, submitter.specs[0], monkeypatch) == 0
    root = wps2(client.get("/wps", query_string={**query, "request": "GetStatus"}))
    assert root.findtext(f"{WPS2}Status") == "Succeeded" and root.findtext(f"{WPS2}PercentCompleted") == "100"
    body = f'<wps:GetResult service="WPS" version="2.0.0" xmlns:wps="http://www.opengis.net/wps/2.0">' \
           f"<wps:JobID>{uuid}</wps:JobID></wps:GetResult>"
    result = wps2(client.post("/wps", data=body, headers={"Content-Type": "text/xml"}))
    assert result.tag == f"{WPS2}Result" and result.findtext(f"{WPS2}JobID") == uuid
    [output] = result.findall(f"{WPS2}Output")
    assert output.get("id") == "sleep_output" and output.findtext(f"{WPS2}Data") == "done sleeping"


def test_a_failed_jobs_reason_reaches_both_apis(cluster, monkeypatch):
    env, client, submitter, _ = cluster
    uuid = uuid_from_status_location(submit(client, "fail", "message=broken%20on%20purpose"))
    run_on_exec_host(env, submitter.specs[0], monkeypatch)
    body = ogc_json(client.get(f"/ogcapi/jobs/{uuid}"), 200, "statusInfo")
    assert body["status"] == "failed" and "broken on purpose" in body["message"]
    assert problem(client.get(f"/ogcapi/jobs/{uuid}/results"), 422)["detail"].count("broken on purpose") == 1
    report = wps2(client.get("/wps", query_string={"service": "WPS", "version": "2.0.0", "request": "GetResult",
                                                   "jobId": uuid}), 400)
    assert "broken on purpose" in report.findtext(f"{OWS2}Exception/{OWS2}ExceptionText")


# -- job lists ----------------------------------------------------------------------------------


def test_get_executions_lists_filters_and_pages(cluster, monkeypatch):
    env, client, submitter, _ = cluster
    uuids = [uuid_from_status_location(submit(client, "sleep", "delay=0")) for _ in range(3)]
    hello = uuid_from_status_location(submit(client, "hello", "name=x"))
    ogc_json(client.delete(f"/ogcapi/jobs/{uuids[0]}"))
    resp = client.get("/wps", query_string={"service": "WPS", "version": "1.0.0", "request": "GetExecutions",
                                            "identifier": "sleep", "maxFeatures": "1"})
    assert resp.status_code == 200, resp.data
    root = etree.fromstring(resp.data)
    assert root.get("count") == "1" and "startIndex=1" in root.get("next")
    [entry] = root.findall("{http://www.opengis.net/wps/1.0.0}ExecuteResponse")
    assert entry.get("statusLocation").endswith(f"{uuids[2]}.xml")
    root = etree.fromstring(client.get("/wps", query_string={
        "service": "WPS", "request": "GetExecutions", "status": "ProcessFailed"}).data)
    listed = [e.get("statusLocation").rsplit("/", 1)[-1][:-4] for e in root]
    assert listed == [uuids[0]] and hello not in listed
    bad = client.get("/wps", query_string={"service": "WPS", "request": "GetExecutions", "maxFeatures": "0"})
    assert bad.status_code == 400


def test_ogc_job_list_filters_and_pages_by_links(cluster):
    env, client, _, _ = cluster
    sleeps = [uuid_from_status_location(submit(client, "sleep", "delay=0")) for _ in range(5)]
    hello = execute_async(client, "hello", {"name": "ogc"})
    ogc_json(client.delete(f"/ogcapi/jobs/{sleeps[1]}"))
    seen, url = [], "/ogcapi/jobs?processID=sleep&limit=2"
    while url:
        body = ogc_json(client.get(url.replace("http://wps.test", "")), 200, "jobList")
        assert len(body["jobs"]) <= 2
        seen += [job["jobID"] for job in body["jobs"]]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
    assert seen == list(reversed(sleeps))
    body = ogc_json(client.get("/ogcapi/jobs?status=dismissed"), 200, "jobList")
    assert [job["jobID"] for job in body["jobs"]] == [sleeps[1]]
    body = ogc_json(client.get("/ogcapi/jobs?status=accepted,running&processID=hello"), 200, "jobList")
    assert [job["jobID"] for job in body["jobs"]] == [hello]
    assert ogc_json(client.get("/ogcapi/jobs?type=other"), 200, "jobList")["jobs"] == []
    assert len(ogc_json(client.get("/ogcapi/jobs?datetime=2000-01-01T00:00:00Z/.."))["jobs"]) == 6
    assert ogc_json(client.get("/ogcapi/jobs?datetime=../2000-01-01T00:00:00Z"))["jobs"] == []
    for query in ("limit=0", "limit=10001", "limit=x", "status=done", "datetime=yesterday", "page=garbage",
                  "minDuration=5", "bogus=1", "datetime=2020-01-02T00:00:00Z/2020-01-01T00:00:00Z"):
        problem(client.get(f"/ogcapi/jobs?{query}"), 400)


def test_the_job_list_is_off_without_identity_unless_turned_on(make_env, monkeypatch, tmp_path):
    _, client, _, _ = _cluster(make_env, monkeypatch, tmp_path, "")
    problem(client.get("/ogcapi/jobs"), 403)
    resp = client.get("/wps", query_string={"service": "WPS", "request": "GetExecutions"})
    assert resp.status_code == 403


# -- identity and ownership ---------------------------------------------------------------------------


@pytest.fixture
def identified(make_env, monkeypatch, tmp_path):
    return _cluster(make_env, monkeypatch, tmp_path, "[jobs]\nidentity_header = X-Remote-User\noperators = root\n")


def test_jobs_belong_to_the_user_nginx_reports(identified):
    env, client, submitter, deleted = identified
    alice = {"X-Remote-User": "alice"}
    uuid = execute_async(client, "sleep", {"delay": 5}, alice)
    job = store(env).get(uuid)
    assert job.owner == "alice" and submitter.specs[0].native_specification.endswith("-A alice")
    bob = {"X-Remote-User": "bob"}
    problem(client.get(f"/ogcapi/jobs/{uuid}", headers=bob), 404, EXC + "no-such-job")
    problem(client.delete(f"/ogcapi/jobs/{uuid}", headers=bob), 404, EXC + "no-such-job")
    assert ogc_json(client.get("/ogcapi/jobs", headers=bob), 200, "jobList")["jobs"] == []
    assert [j["jobID"] for j in ogc_json(client.get("/ogcapi/jobs", headers=alice))["jobs"]] == [uuid]
    problem(client.get("/ogcapi/jobs"), 401)
    problem(client.delete(f"/ogcapi/jobs/{uuid}"), 401)
    problem(client.get("/ogcapi/jobs", headers={"X-Remote-User": "bad user\u00e9"}), 400)
    assert deleted == []
    # an operator sees and dismisses every job
    root = {"X-Remote-User": "root"}
    assert [j["jobID"] for j in ogc_json(client.get("/ogcapi/jobs", headers=root))["jobs"]] == [uuid]
    assert ogc_json(client.delete(f"/ogcapi/jobs/{uuid}", headers=root))["status"] == "dismissed"
    assert deleted == ["4242"] and "(root)" in store(env).get(uuid).message


# -- OGC API – Processes -------------------------------------------------------------------------


def test_landing_conformance_api_and_processes(cluster):
    _, client, _, _ = cluster
    landing = ogc_json(client.get("/ogcapi/"), 200, "landingPage")
    assert all(link["href"].startswith("http://wps.test/ogcapi") for link in landing["links"])
    assert landing == ogc_json(client.get("/ogcapi"))
    conformance = ogc_json(client.get("/ogcapi/conformance"), 200, "confClasses")
    for name in ("core", "ogc-process-description", "json", "oas30", "job-list", "dismiss"):
        assert f"http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/{name}" in conformance["conformsTo"]
    api = client.get("/ogcapi/api")
    assert api.status_code == 200 and json.loads(api.data)["openapi"].startswith("3.0")
    listed = ogc_json(client.get("/ogcapi/processes"), 200, "processList")
    identifiers = {p["id"] for p in listed["processes"]}
    wps_caps = etree.fromstring(client.get("/wps?service=WPS&request=GetCapabilities").data)
    assert identifiers == {e.text for e in wps_caps.iter("{http://www.opengis.net/ows/1.1}Identifier")
                           if e.getparent().tag.endswith("Process")}
    sleep = ogc_json(client.get("/ogcapi/processes/sleep"), 200, "process")
    assert sleep["inputs"]["delay"]["schema"] == {"type": "number", "minimum": 0, "maximum": 3600.0, "default": 2.0}
    assert "async-execute" in sleep["jobControlOptions"] and "dismiss" in sleep["jobControlOptions"]
    problem(client.get("/ogcapi/processes/nope"), 404, EXC + "no-such-process")
    problem(client.get("/ogcapi/nothing"), 404)
    problem(client.put("/ogcapi/processes"), 405)


def test_sync_execute_raw_and_document(cluster):
    _, client, _, _ = cluster
    headers = {"Content-Type": "application/json"}
    resp = client.post("/ogcapi/processes/hello/execution", data=json.dumps({"inputs": {"name": "OGC"}}),
                       headers=headers)
    assert resp.status_code == 200 and resp.data == b"Hello OGC", resp.data
    resp = client.post("/ogcapi/processes/hello/execution",
                       data=json.dumps({"inputs": {"name": {"value": "doc"}}, "response": "document"}),
                       headers={**headers, "Prefer": "handling=lenient, wait=10"})  # not applied: ignored
    body = ogc_json(resp, 200, "results")
    assert body == {"output": "Hello doc"} and "Preference-Applied" not in resp.headers
    resp = client.post("/ogcapi/processes/wordcount/execution", headers=headers, data=json.dumps({
        "inputs": {"text": {"value": "a b a", "mediaType": "text/plain"}}, "response": "document"}))
    assert ogc_json(resp, 200, "results")["output"]["value"]["words"] == 3


def test_async_execute_is_the_same_job_on_both_apis(cluster, monkeypatch):
    env, client, submitter, _ = cluster
    uuid = execute_async(client, "sleep", {"delay": 0})
    doc = env.status_doc(uuid)  # the WPS 1.0 status document of the same job
    assert status_of(doc) == "ProcessAccepted"
    status = ogc_json(client.get(f"/ogcapi/jobs/{uuid}"), 200, "statusInfo")
    assert status["status"] == "accepted" and status["processID"] == "sleep"
    problem(client.get(f"/ogcapi/jobs/{uuid}/results"), 404, EXC + "result-not-ready")
    assert run_on_exec_host(env, submitter.specs[0], monkeypatch) == 0
    status = ogc_json(client.get(f"/ogcapi/jobs/{uuid}"), 200, "statusInfo")
    assert status["status"] == "successful" and status["progress"] == 100
    assert any(link["rel"].endswith("/results") for link in status["links"])
    assert ogc_json(client.get(f"/ogcapi/jobs/{uuid}/results"), 200, "results") == {"sleep_output": "done sleeping"}
    log = ogc_json(client.get(f"/ogcapi/jobs/{uuid}/log"))
    assert log["jobID"] == uuid and "stdout" in log


@pytest.mark.parametrize(("body", "status"), [
    (b"{", 400), (b"[]", 400), (b"null", 400), (b'{"inputs": []}', 400), (b'{"inputs": {"nope": 1}}', 400),
    (b'{"inputs": {"delay": "soon"}}', 400), (b'{"inputs": {"delay": 99999}}', 400),
    (b'{"inputs": {"delay": [1, 2]}}', 400), (b'{"inputs": {"delay": {"no": 1}}}', 400),
    (b'{"inputs": {"delay": NaN}}', 400), (b'{"outputs": {"nope": {}}}', 400), (b'{"response": "both"}', 400),
    (b'{"subscriber": {"successUri": "http://x"}}', 400), (b'{"extra": 1}', 400), (b"\xff\xfe", 400),
    (b'{"inputs": {"delay": {"value": 1, "uom": 5}}}', 400), (b"[" * 100000, 400),
])
def test_bad_execute_requests_are_problems_not_faults(cluster, body, status):
    env, client, submitter, _ = cluster
    resp = client.post("/ogcapi/processes/sleep/execution", data=body,
                       headers={"Content-Type": "application/json", "Prefer": "respond-async"})
    problem(resp, status)
    assert submitter.specs == [] and not list(Path(env.workdir).iterdir())


def test_execute_needs_json_and_a_known_process(cluster):
    _, client, _, _ = cluster
    problem(client.post("/ogcapi/processes/sleep/execution", data="<x/>", headers={"Content-Type": "text/xml"}), 415)
    problem(client.post("/ogcapi/processes/nope/execution", data="{}", headers={"Content-Type": "application/json"}),
            404, EXC + "no-such-process")


def test_log_tail_is_capped_and_redacted(make_env, monkeypatch, tmp_path):
    env, client, _, _ = _cluster(make_env, monkeypatch, tmp_path, "[jobs]\njob_list = true\nlog_tail_bytes = 64\n")
    uuid = uuid_from_status_location(submit(client, "sleep", "delay=5"))
    workdir = Path(store(env).get(uuid).workdir)
    (workdir / f"{uuid}.out").write_text("x" * 500 + "\nconnect postgresql://wps:hunter22@db/wps password=abc\n")
    log = ogc_json(client.get(f"/ogcapi/jobs/{uuid}/log"))
    assert log["stdoutTruncated"] and len(log["stdout"].encode()) <= 64 + 20
    assert "hunter22" not in log["stdout"] and "abc" not in log["stdout"] and "[redacted]" in log["stdout"]
    assert log["stderr"] is None


def test_jobs_section_is_checked(make_env):
    from pywps_gridengine.config import ConfigError, load

    for section in ("[jobs]\nidentity_header = X Remote\n", "[jobs]\njob_list = maybe\n",
                    "[jobs]\nlog_tail_bytes = 0\n", "[jobs]\nunknown = 1\n", "[jobs]\nogcapi_url = ftp://x\n"):
        env = make_env(mode="default", extra=section)
        with pytest.raises(ConfigError, match=r"\[jobs\]"):
            load(str(env.cfg))
