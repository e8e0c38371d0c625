"""The original demo's walkthrough, end to end, against the whole cluster.

Clients run on this machine and reach the web host through its published
port, as a user of the demo does (http://localhost:<port>/wps).
"""

import datetime
import os
import pathlib
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest
import requests
from pwgtest import NS, accounting, as_user, hosts, poll, remote, sge_job_id

# Kept equal to demo_published_port in ../host_vars/web1.yml.
BASE = "http://localhost:15000"
WPS = f"{BASE}/wps"
EXEC_HOSTS = set(hosts("sge_exec"))
testinfra_hosts = hosts("sge_qmaster")
# The birdy command line of the README's walkthrough, which runs against the
# demo (port 5000); the tests run it here, against this scenario's port.
README = pathlib.Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "README.md"
README_WPS = "http://localhost:5000/wps"
BIRDY_HELP = "birdy -h"
BIRDY_HELLO = "birdy hello --name Birdy"
BIRDY_SLEEP = "birdy sleep --delay 5 --output_formats sleep_output None None"


def kvp(**params: str) -> requests.Response:
    return requests.get(WPS, params={"service": "WPS", "version": "1.0.0", **params}, timeout=60)


def execute_async(identifier: str, datainputs: str) -> str:
    reply = kvp(request="Execute", identifier=identifier, datainputs=datainputs,
                storeExecuteResponse="true", status="true")
    assert reply.status_code == 200, reply.text
    location = ET.fromstring(reply.content).get("statusLocation")
    assert location and location.startswith(f"{BASE}/wpsoutputs/"), reply.text
    return location


def fetch(location: str):
    """Read a status document the way a client does; never half a file (written atomically)."""
    def read() -> bytes:
        reply = requests.get(location, timeout=10)
        assert reply.status_code == 200
        return reply.content
    return read


def birdy(command: str) -> subprocess.CompletedProcess:
    """Run a walkthrough command line in a shell, birdy from this virtualenv."""
    env = {**os.environ, "WPS_SERVICE": WPS,
           "PATH": f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=180,
                          check=False)


def sleep_jobs_since(qmaster, since: datetime.datetime) -> set[str]:
    """The `sleep` jobs (job names <prefix>-sleep-<uuid>) in the qmaster's accounting file submitted since SINCE."""
    records = as_user(qmaster, "qacct -j").stdout.split("\n=")
    fields = [dict(line.split(None, 1) for line in record.splitlines() if len(line.split(None, 1)) == 2)
              for record in records]
    return {f["jobnumber"].strip() for f in fields
            if "-sleep-" in f.get("jobname", "")
            and datetime.datetime.strptime(f["qsub_time"].strip(), "%a %b %d %H:%M:%S %Y") >= since}


def ran_on_an_exec_host(record: dict[str, str]) -> None:
    """Accounting says where a job ran: an exec host, never the qmaster, as the service user."""
    assert record["hostname"].split(".")[0] in EXEC_HOSTS, record
    assert record["owner"] == "wps", record
    assert record["exit_status"].split()[0] == "0", record


def test_getcapabilities(host):
    reply = kvp(request="GetCapabilities")
    assert reply.status_code == 200
    ids = {e.text for e in ET.fromstring(reply.content).iterfind(".//wps:Process/ows:Identifier", NS)}
    assert {"hello", "sleep"} <= ids


def test_hello_runs_synchronously_on_the_web_host(host):
    reply = kvp(request="Execute", identifier="hello", datainputs="name=Friday")
    assert reply.status_code == 200
    doc = ET.fromstring(reply.content)
    assert doc.find(".//wps:ProcessSucceeded", NS) is not None
    assert "Friday" in doc.find(".//wps:LiteralData", NS).text
    assert sge_job_id(reply.text) is None


def test_sleep_runs_on_an_exec_host_with_progress(host):
    execution, seen = poll(fetch(execute_async("sleep", "delay=1")))
    states = [s for s, _ in seen]
    assert states[-1] == "ProcessSucceeded", execution.response
    assert "ProcessStarted" in states
    assert len({p for s, p in seen if s == "ProcessStarted"}) >= 3, seen  # progress moved
    job = sge_job_id(execution.response)
    assert job, execution.response
    ran_on_an_exec_host(accounting(host, job))


def test_owslib_async_with_output_by_reference(host):
    from owslib.wps import WebProcessingService, monitorExecution

    wps = WebProcessingService(WPS, version="1.0.0", skip_caps=False)
    execution = wps.execute("textfile", [("lines", "3")], output=[("output", True, "text/csv")], mode="async")
    monitorExecution(execution, sleepSecs=1, download=False)
    assert execution.isSucceded(), execution.errors
    [output] = execution.processOutputs
    assert output.reference.startswith(f"{BASE}/wpsoutputs/")
    assert output.mimeType == "text/csv"
    body = requests.get(output.reference, timeout=10)
    assert body.status_code == 200
    assert body.text.splitlines() == ["n,square", "1,1", "2,4", "3,9"]


def test_birdy_runs_hello_and_sleep_async(host):
    from birdy import WPSClient

    # progress=True is birdy's asynchronous mode: it polls the status document.
    client = WPSClient(WPS, progress=True)
    hello = client.hello(name="Birdy")
    assert hello.isSucceded(), hello.errors
    assert "Birdy" in hello.get()[0]
    assert sge_job_id(requests.get(hello.statusLocation, timeout=10).text), "hello did not go through Grid Engine"
    sleep = client.sleep(delay=0)
    assert sleep.isSucceded(), sleep.errors
    assert sleep.get()[0] == "done sleeping"


def test_readme_shows_the_birdy_command_line_tested_here():
    lines = README.read_text().splitlines()
    for command in (f"export WPS_SERVICE={README_WPS}", BIRDY_HELP, BIRDY_HELLO, BIRDY_SLEEP):
        assert f"    {command}" in lines, f"README.md does not show `{command}`"


def test_birdy_cli_lists_the_processes(host):
    run = birdy(BIRDY_HELP)
    assert run.returncode == 0, run.stdout + run.stderr
    commands = run.stdout.split("Commands:")[1].split()
    assert {"hello", "sleep"} <= set(commands), run.stdout


def test_birdy_cli_says_hello(host):
    # No output named: OWSLib sends no ResponseForm, a synchronous Execute.
    run = birdy(BIRDY_HELLO)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.endswith("\nOutput:\noutput=['Hello Birdy']\n"), run.stdout


def test_birdy_cli_sleep_runs_asynchronously_on_an_exec_host(host):
    # Naming the output makes OWSLib ask for a stored response with status
    # updates: an asynchronous Execute, which goes to Grid Engine.
    since = datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)  # the hosts run in UTC
    start = time.monotonic()
    run = birdy(BIRDY_SLEEP)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.endswith("\nOutput:\nsleep_output=['done sleeping']\n"), run.stdout
    assert time.monotonic() - start >= 5 * 5  # five steps of --delay seconds
    deadline = time.monotonic() + 60
    while not (new := sleep_jobs_since(host, since)) and time.monotonic() < deadline:
        time.sleep(1)
    assert len(new) == 1, f"sleep jobs accounted during `{BIRDY_SLEEP}`: {new}"
    ran_on_an_exec_host(accounting(host, new.pop()))


def test_birdy_cli_original_sleep_line_runs_synchronously(host):
    # The original demo's line: no output named, a plain Execute (see README).
    run = birdy("birdy sleep --delay 5")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.endswith("\nOutput:\nsleep_output=['done sleeping']\n"), run.stdout


def test_qdel_turns_the_job_into_process_failed_within_60_s(host):
    status = fetch(execute_async("sleep", "delay=30"))
    execution, _ = poll(status, until=lambda e: sge_job_id(e.response), timeout=60, interval=0.5)
    job = sge_job_id(execution.response)
    time.sleep(2)
    # As the job's owner on the web host (the submit host), as a user would.
    remote(hosts("web")[0]).check_output(f"sudo -u wps -i qdel {job}")
    deleted = time.monotonic()
    execution, seen = poll(status, timeout=90)
    # OWSLib reads a ProcessFailed status with its ExceptionReport as "Exception".
    assert ET.fromstring(execution.response).find("wps:Status/wps:ProcessFailed", NS) is not None, seen
    assert time.monotonic() - deleted < 60
    assert "Grid Engine" in execution.response.decode()


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"request": "DescribeProcess", "identifier": "nosuchprocess"}, 400),
        ({"request": "Execute", "identifier": "nosuchprocess", "datainputs": "x=1"}, 400),
        ({"request": "Execute", "identifier": "sleep", "datainputs": "delay=soon"}, 400),
        ({"request": "Execute", "identifier": "wordcount"}, 400),
    ],
    ids=["describe-unknown", "execute-unknown", "wrong-type", "missing-input"],
)
def test_bad_requests_get_an_exception_report(host, params, code):
    reply = kvp(**params)
    assert reply.status_code == code, reply.text
    assert "ExceptionReport" in reply.text
    assert "Traceback" not in reply.text


def test_malformed_xml_post_gets_an_exception_report(host):
    reply = requests.post(WPS, data=b"<wps:Execute service='WPS' version='1.0.0'", timeout=30,
                          headers={"Content-Type": "text/xml"})
    assert 400 <= reply.status_code < 500, reply.text
    assert "ExceptionReport" in reply.text
    assert "Traceback" not in reply.text
