"""Job control against the real cluster: a dismiss stops the Grid Engine job, on every protocol;
the job lists and OGC API – Processes over the same jobs; two independent OGC API clients.

Clients run on this machine and reach the web host through its published
port (nginx, then the app), as a user of the demo does. Grid Engine is asked
on the qmaster (qstat, qacct) as the service user.
"""

import json
import os
import pathlib
import sys
import time
import xml.etree.ElementTree as ET

import pytest
import requests
from pwgtest import accounting, as_user, hosts, poll, sge_job_id

PROJECT = pathlib.Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
sys.path.insert(0, str(PROJECT / "app" / "tests"))
from ogcschema import errors  # noqa: E402  (the app's test directory is put on the path just above)

# Kept equal to demo_published_port in ../host_vars/web1.yml.
BASE = "http://localhost:15000"
WPS = f"{BASE}/wps"
OGC = f"{BASE}/ogcapi"
WPS2 = "{http://www.opengis.net/wps/2.0}"
testinfra_hosts = hosts("sge_qmaster")
#: The most seconds from a dismiss to the Grid Engine job gone and its slot free (the issue's bound).
DISMISS_BOUND = 10.0
FIGURES = PROJECT / ".cache" / "logs" / "jobcontrol-figures.json"


def valid(name: str, document):
    problems = errors(name, document)
    assert not problems, (problems, document)
    return document


def execute_wps1(identifier: str, datainputs: str) -> str:
    """An asynchronous WPS 1.0 Execute; the job id (from its statusLocation)."""
    reply = requests.get(WPS, params={"service": "WPS", "version": "1.0.0", "request": "Execute",
                                      "identifier": identifier, "datainputs": datainputs,
                                      "storeExecuteResponse": "true", "status": "true"}, timeout=60)
    assert reply.status_code == 200, reply.text
    return ET.fromstring(reply.content).get("statusLocation").rsplit("/", 1)[-1].removesuffix(".xml")


def execute_ogc(identifier: str, inputs: dict) -> str:
    reply = requests.post(f"{OGC}/processes/{identifier}/execution", json={"inputs": inputs},
                          headers={"Prefer": "respond-async"}, timeout=60)
    assert reply.status_code == 201, reply.text
    body = valid("statusInfo", reply.json())
    assert reply.headers["Location"] == f"{OGC}/jobs/{body['jobID']}"
    return body["jobID"]


def status(job_id: str) -> dict:
    reply = requests.get(f"{OGC}/jobs/{job_id}", timeout=30)
    assert reply.status_code == 200, reply.text
    return valid("statusInfo", reply.json())


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout} s")


def running_in_grid_engine(qmaster, job_id: str) -> str:
    """The Grid Engine job of a WPS job, once it runs there (its launcher reported the start)."""
    def started():
        info = status(job_id)
        sge = info.get("usage", {}).get("gridEngineJobId")
        return sge if info["status"] == "running" and sge else None
    sge = wait_for(started, 90, f"job {job_id} running")

    def running_there() -> bool:
        # The launcher may report the start while qstat still shows the job "t" (transferring): wait for "r".
        rows = [line.split() for line in as_user(qmaster, "qstat -u wps -s r").stdout.splitlines()[2:]]
        return any(row[:1] == [sge] and len(row) > 4 and row[4] == "r" for row in rows)

    wait_for(running_there, 30, f"Grid Engine job {sge} in state r")
    return sge


def used_slots(qmaster) -> int:
    """Slots in use across the cluster's queues (qstat -g c, the USED column)."""
    lines = as_user(qmaster, "qstat -g c").stdout.splitlines()
    header = lines[0].split()
    column = header.index("USED") - 1  # "CLUSTER QUEUE" is two words in the header, one in the rows
    return sum(int(line.split()[column]) for line in lines[2:] if line.strip())


def record_figure(name: str, value: float) -> None:
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    figures = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    figures.setdefault(name, []).append(round(value, 2))
    FIGURES.write_text(json.dumps(figures, indent=1))


def dismiss(protocol: str, job_id: str) -> None:
    if protocol == "wps2-kvp":
        reply = requests.get(WPS, params={"service": "WPS", "version": "2.0.0", "request": "Dismiss",
                                          "jobId": job_id}, timeout=60)
        assert reply.status_code == 200, reply.text
        assert ET.fromstring(reply.content).findtext(f"{WPS2}Status") == "Dismissed"
    elif protocol == "wps2-xml":
        body = (f'<wps:Dismiss service="WPS" version="2.0.0" xmlns:wps="http://www.opengis.net/wps/2.0">'
                f"<wps:JobID>{job_id}</wps:JobID></wps:Dismiss>")
        reply = requests.post(WPS, data=body, headers={"Content-Type": "text/xml"}, timeout=60)
        assert reply.status_code == 200, reply.text
        assert ET.fromstring(reply.content).findtext(f"{WPS2}Status") == "Dismissed"
    elif protocol == "wps1-vendor":
        reply = requests.get(WPS, params={"service": "WPS", "version": "1.0.0", "request": "Dismiss",
                                          "jobId": job_id}, timeout=60)
        assert reply.status_code == 200, reply.text
        assert "dismissed by the client" in reply.text
    else:
        reply = requests.delete(f"{OGC}/jobs/{job_id}", timeout=60)
        assert reply.status_code == 200, reply.text
        assert valid("statusInfo", reply.json())["status"] == "dismissed"


@pytest.mark.parametrize(("started_by", "protocol"), [
    ("ogcapi", "wps2-kvp"), ("ogcapi", "wps2-xml"), ("ogcapi", "wps1-vendor"), ("wps1", "ogcapi"),
])
def test_dismiss_stops_the_grid_engine_job_and_frees_its_slot(host, started_by, protocol):
    # A job that just reported success may still be leaving its slot: start from a quiet cluster.
    wait_for(lambda: not as_user(host, "qstat -u wps").stdout.strip(), 60, "no job of the service user left")
    baseline = used_slots(host)
    job_id = execute_ogc("sleep", {"delay": 30}) if started_by == "ogcapi" else execute_wps1("sleep", "delay=30")
    try:
        sge = running_in_grid_engine(host, job_id)
        assert used_slots(host) == baseline + 1
        asked = time.monotonic()
        dismiss(protocol, job_id)
        answered = time.monotonic() - asked
        wait_for(lambda: as_user(host, f"qstat -j {sge}").rc != 0 and used_slots(host) == baseline, DISMISS_BOUND,
                 f"Grid Engine job {sge} gone and its slot free")
        freed = time.monotonic() - asked
    finally:
        requests.delete(f"{OGC}/jobs/{job_id}", timeout=60)  # a failed check leaves no 150 s job behind
    record_figure("dismiss_answer_seconds", answered)
    record_figure("dismiss_to_slot_free_seconds", freed)
    record = accounting(host, sge)  # the qmaster's accounting: the job ended by a signal, not by itself
    assert record["exit_status"].split()[0] in ("137", "143"), record
    info = status(job_id)
    assert info["status"] == "dismissed" and "dismissed by the client" in info["message"]
    document = requests.get(f"{BASE}/wpsoutputs/{job_id}.xml", timeout=30)
    assert "ProcessFailed" in document.text and "dismissed by the client" in document.text
    # the slot is free for the next job: it runs and succeeds
    following = execute_ogc("sleep", {"delay": 0})
    wait_for(lambda: status(following)["status"] == "successful", 90, "the next job succeeded")


def test_a_wps1_job_is_listed_and_polled_through_the_ogc_api_and_the_reverse(host):
    wps1_job = execute_wps1("sleep", "delay=0")
    listed = requests.get(f"{OGC}/jobs", params={"processID": "sleep", "limit": 50}, timeout=30)
    assert listed.status_code == 200, listed.text
    assert wps1_job in [job["jobID"] for job in valid("jobList", listed.json())["jobs"]]
    wait_for(lambda: status(wps1_job)["status"] == "successful", 90, "the WPS 1.0 job succeeded")
    results = requests.get(f"{OGC}/jobs/{wps1_job}/results", timeout=30)
    assert valid("results", results.json()) == {"sleep_output": "done sleeping"}

    ogc_job = execute_ogc("sleep", {"delay": 0})
    reply = requests.get(WPS, params={"service": "WPS", "version": "1.0.0", "request": "GetExecutions",
                                      "identifier": "sleep", "maxFeatures": "50"}, timeout=30)
    assert reply.status_code == 200, reply.text
    locations = [e.get("statusLocation") for e in ET.fromstring(reply.content)]
    assert f"{BASE}/wpsoutputs/{ogc_job}.xml" in locations
    execution, _ = poll(lambda: requests.get(f"{BASE}/wpsoutputs/{ogc_job}.xml", timeout=10).content)
    assert execution.status == "ProcessSucceeded" and sge_job_id(execution.response)
    assert "ran on exec" in execution.statusMessage and "wallclock" in execution.statusMessage  # what it used
    reply = requests.get(WPS, params={"service": "WPS", "version": "2.0.0", "request": "GetResult",
                                      "jobId": ogc_job}, timeout=30)
    assert reply.status_code == 200 and "done sleeping" in reply.text, reply.text


def test_owslib_drives_the_ogc_api(host):
    from owslib.ogcapi.processes import Processes

    api = Processes(OGC)
    assert {"hello", "sleep"} <= {p["id"] for p in api.processes()}
    assert api.process("sleep")["inputs"]["delay"]["schema"]["type"] == "number"
    answer = api.execute("sleep", {"delay": 0}, async_=True)
    job_id = valid("statusInfo", answer)["jobID"]
    wait_for(lambda: status(job_id)["status"] == "successful", 90, "the OWSLib job succeeded")
    assert api.execute("hello", {"name": "OWSLib"}, response="document") == {"output": "Hello OWSLib"}


def test_the_generated_ogc_api_client_drives_the_ogc_api(host):
    """ogc-api-processes-client, generated from the standard's OpenAPI: its models check every answer's shape."""
    import ogc_api_processes_client as client

    with client.ApiClient(client.Configuration(host=OGC)) as api:
        landing = client.CapabilitiesApi(api).get_landing_page()
        assert any(link.rel == "http://www.opengis.net/def/rel/ogc/1.0/processes" for link in landing.links)
        conformance = client.ConformanceDeclarationApi(api).get_conformance_classes()
        assert "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/dismiss" in conformance.conforms_to
        assert "sleep" in [p.id for p in client.ProcessListApi(api).get_processes().processes]
        description = client.ProcessDescriptionApi(api).get_process_description("sleep")
        assert "delay" in description.inputs
        execute = client.Execute.from_dict({"inputs": {"delay": 20.5}})  # the generated model takes a float
        created = client.ExecuteApi(api).execute_with_http_info("sleep", execute,
                                                                 _headers={"Prefer": "respond-async"})
        assert created.status_code == 201
        job_id = json.loads(created.raw_data)["jobID"]
        statuses = client.StatusApi(api)
        wait_for(lambda: statuses.get_status(job_id).status.value == "running", 90, "the job running")
        jobs = client.JobListApi(api).get_jobs()
        assert job_id in [job.job_id for job in jobs.jobs]
        dismissed = client.DismissApi(api).dismiss(job_id)
        assert dismissed.status.value == "dismissed"
        assert statuses.get_status(job_id).status.value == "dismissed"
        with pytest.raises(client.ApiException) as refused:
            client.ResultApi(api).get_result(job_id)
        assert refused.value.status == 410


def test_bad_job_requests_through_nginx(host):
    for method, path in (("GET", "/jobs/00000000-0000-4000-8000-000000000000"), ("DELETE", "/jobs/nope"),
                         ("GET", "/processes/nope")):
        reply = requests.request(method, f"{OGC}{path}", timeout=30)
        assert reply.status_code == 404 and reply.headers["Content-Type"].startswith("application/problem+json")
        assert valid("exception", reply.json())["type"].startswith("http://www.opengis.net/def/exceptions/")
    finished = execute_ogc("hello", {"name": "done"})
    wait_for(lambda: status(finished)["status"] == "successful", 90, "the hello job succeeded")
    reply = requests.delete(f"{OGC}/jobs/{finished}", timeout=30)
    assert reply.status_code == 409 and valid("exception", reply.json())["jobStatus"] == "successful"
    reply = requests.put(f"{OGC}/jobs", timeout=30)
    assert reply.status_code == 405 and "DELETE" in reply.headers.get("Allow", "")
    # whatever a client says in the identity header never reaches the app: the demo has no identity
    reply = requests.post(f"{OGC}/processes/sleep/execution", json={"inputs": {"delay": 0}},
                          headers={"Prefer": "respond-async", "X-Remote-User": "root"}, timeout=60)
    assert reply.status_code == 201, reply.text
    job_id = reply.json()["jobID"]
    done = wait_for(lambda: (info := status(job_id))["status"] == "successful" and info, 90, "the job succeeded")
    assert accounting(host, done["usage"]["gridEngineJobId"])["account"] != "root"
