"""The front door under hostile input, against the whole cluster through nginx.

The project's corpus of hostile requests (``app/tests/corpus``) runs here
through nginx (cases whose ``where`` is ``cluster`` or ``both``), the same
table the app's pytest runs against the WSGI app. Then a flood from one
client: the service keeps answering another client, every Execute it accepted
succeeds, and it refuses the rest with 503 ServerBusy, never with a hang or
another 5xx.
"""

import concurrent.futures
import http.client
import os
import pathlib
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ET

import pytest
import requests
from pwgtest import SHARED, as_user, hosts, own_address, poll, remote

PROJECT = pathlib.Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
sys.path.insert(0, str(PROJECT / "app" / "tests"))
from corpus import Case, cases, exception_of  # noqa: E402  (the app's test directory is put on the path just above)

# Kept equal to demo_published_port in ../host_vars/web1.yml.
BASE = "http://localhost:15000"
HOST, PORT = "localhost", 15000
WEB = hosts("web")[0]
QMASTER = hosts("sge_qmaster")[0]
OWS = "{http://www.opengis.net/ows/1.1}"
CLUSTER_CASES = [c for c in cases() if c.where in ("cluster", "both")]
# Below nginx's per-client rate on /wps (nginx_wps_limit_rate, 10 r/s), so the
# corpus measures the answers, not the rate limit.
PACE = 0.12

testinfra_hosts = [WEB]


class Reply:
    def __init__(self, status: int, headers, content: bytes) -> None:
        self.status_code, self.headers, self.content = status, headers, content


def send(case: Case) -> Reply:
    """The case's request, byte for byte: http.client sends the path as given (requests would
    resolve ``..`` segments and re-encode it, and never send what a hostile client sends)."""
    connection = http.client.HTTPConnection(HOST, PORT, timeout=60)
    try:
        names = {name.lower() for name, _ in case.headers}
        target = case.path + ("?" + case.query if case.query else "")
        # A space cannot go into a request line; clients send it as %20.
        connection.putrequest(case.method, target.replace(" ", "%20"),
                              skip_host="host" in names, skip_accept_encoding=True)
        for name, value in case.headers:
            connection.putheader(name, value)
        if case.body and "content-length" not in names:
            connection.putheader("Content-Length", str(len(case.body)))
        connection.endheaders(case.body or None)
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def leftovers(host) -> set[str]:
    """The work directories on the shared tree (one per Execute PyWPS prepares)."""
    out = host.check_output(f"find {SHARED}/workdir -maxdepth 1 -name 'pywps_process_*' 2>/dev/null || true")
    return set(out.split())


@pytest.fixture(scope="module")
def before(host):
    return leftovers(host)


def test_the_corpus_is_big_enough():
    assert len(cases()) >= 100, len(cases())
    assert len(CLUSTER_CASES) >= 80, len(CLUSTER_CASES)


@pytest.mark.parametrize("case", CLUSTER_CASES, ids=lambda c: c.name)
def test_hostile_request(case, before):
    time.sleep(PACE)
    reply = send(case)
    body = reply.content
    assert reply.status_code == case.status, (case.note or case.name, reply.status_code, body[:600])
    assert b"Traceback" not in body and b'File "' not in body, body[:600]
    assert reply.headers.get("X-Content-Type-Options") == "nosniff", dict(reply.headers)
    assert reply.status_code < 500 or reply.status_code == case.status, body[:600]
    if case.code is not None:
        code, locator, text = exception_of(body)  # an ExceptionReport (OWS 1.1 or 2.0) or an RFC 7807 problem
        assert code == case.code and text, body[:600]
        if case.locator is not None:
            assert locator == case.locator, body[:600]


def test_rejected_requests_leave_nothing_behind(host, before):
    # Runs after the corpus (pytest keeps the file's order).
    assert leftovers(host) - before == set()


def test_no_request_row_left_started():
    """Every Execute row the corpus made is final: none stays Accepted or Started (PyWPS status 1, 2)."""
    query = ("SELECT count(*) FROM pywps_requests WHERE status IN (1, 2) "
             "AND time_start < now() - interval '5 minutes' AND lower(operation) = 'execute'")
    db = remote(hosts("db")[0])
    count = db.check_output(f"runuser -u postgres -- psql -d wps -Atc \"{query}\"").strip()
    assert count == "0", count


# -- the cap on active jobs, on the real PostgreSQL ---------------------------------------------

# Kept equal to pywps_max_active_jobs_per_client's default (roles/pywps/defaults/main.yml).
PER_CLIENT_CAP = 30


def sql(query: str) -> str:
    db = remote(hosts("db")[0])
    return db.check_output(f"runuser -u postgres -- psql -d wps -Atc {_quote(query)}").strip()


def active_jobs() -> int:
    return int(sql("SELECT count(*) FROM pywps_gridengine_jobs WHERE state IN ('accepted', 'started')"))


def test_the_per_client_job_cap_holds_under_concurrent_submissions():
    """Concurrent Executes from one client past its cap: exactly the cap is admitted (PostgreSQL's
    advisory lock serialises the count-and-insert), the rest get 503 ServerBusy with Retry-After."""
    poll_until = time.monotonic() + 300
    while active_jobs() and time.monotonic() < poll_until:  # earlier tests' jobs count against the cap
        time.sleep(2)
    assert active_jobs() == 0, "earlier jobs still active"
    started = sql("SELECT CURRENT_TIMESTAMP AT TIME ZONE 'UTC'")  # the job table's clock (naive UTC)
    execute = f"{BASE}/wps?" + urllib.parse.urlencode({
        "service": "WPS", "version": "1.0.0", "request": "Execute", "identifier": "sleep",
        "datainputs": "delay=300", "storeExecuteResponse": "true", "status": "true"})

    def submit(_: int) -> tuple[int, str, str]:
        for _attempt in range(10):
            time.sleep(0.35)  # three threads at ~8.5 r/s: under nginx's per-client rate (10 r/s)
            reply = requests.get(execute, timeout=60)
            text = "" if reply.status_code == 200 else " ".join(
                ET.fromstring(reply.content).find(f"{OWS}Exception").itertext()).strip()
            if reply.status_code == 503 and "asynchronous jobs" not in text:
                continue  # nginx's own per-client limit, not the app's cap: send it again
            return reply.status_code, text, reply.headers.get("Retry-After", "")
        raise AssertionError("nginx refused one request ten times")

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:  # nginx_wps_limit_conn is 3
            answers = list(pool.map(submit, range(PER_CLIENT_CAP + 6)))
        accepted = [a for a in answers if a[0] == 200]
        refused = [a for a in answers if a[0] != 200]
        assert len(accepted) == PER_CLIENT_CAP, answers
        assert len(refused) == 6, answers
        for status, text, retry_after in refused:
            assert status == 503 and retry_after.isdigit(), (status, text, retry_after)
            assert f"the most allowed per client is {PER_CLIENT_CAP}" in text, text
        rows = sql(f"SELECT count(*) FROM pywps_gridengine_jobs WHERE created_at >= '{started}' "
                   "AND state IN ('accepted', 'started')")
        assert int(rows) == PER_CLIENT_CAP, rows
    finally:
        ids = sql(f"SELECT string_agg(sge_job_id, ' ') FROM pywps_gridengine_jobs WHERE created_at >= '{started}' "
                  "AND state IN ('accepted', 'started') AND sge_job_id IS NOT NULL")
        if ids:
            as_user(remote(WEB), f"qdel {ids}")
        until = time.monotonic() + 180
        while active_jobs() and time.monotonic() < until:  # the reconciler fails the deleted jobs
            time.sleep(2)
    assert active_jobs() == 0, "deleted jobs still active"


# -- a flood from one client ---------------------------------------------------------------------

FLOOD_CAPABILITIES = 1000
FLOOD_EXECUTES = 200


def other_client_answers(seconds: float) -> list[tuple[int, float]]:
    """GetCapabilities from another client (the qmaster host) for SECONDS: (status, seconds) each.

    It uses the web host's address: nginx answers only its server name
    (localhost in the demo), its aliases and IP addresses."""
    script = (
        "import time, urllib.request, urllib.error\n"
        f"end = time.time() + {seconds}\n"
        "while time.time() < end:\n"
        "    t = time.time()\n"
        "    try:\n"
        "        code = urllib.request.urlopen('http://" + own_address(WEB)
        + "/wps?service=WPS&request=GetCapabilities', timeout=30).status\n"
        "    except urllib.error.HTTPError as e:\n"
        "        code = e.code\n"
        "    print(code, round(time.time() - t, 3), flush=True)\n"
        "    time.sleep(0.5)\n"
    )
    out = remote(QMASTER).check_output(f"python3 -c {_quote(script)}")
    return [(int(code), float(secs)) for code, secs in (line.split() for line in out.splitlines())]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def test_a_flood_from_one_client_leaves_the_service_answering_others():
    capabilities = f"{BASE}/wps?service=WPS&request=GetCapabilities"
    execute = f"{BASE}/wps?" + urllib.parse.urlencode({
        "service": "WPS", "version": "1.0.0", "request": "Execute", "identifier": "sleep",
        "datainputs": "delay=0", "storeExecuteResponse": "true", "status": "true"})

    def hit(url: str) -> tuple[int, bytes]:
        try:
            reply = requests.get(url, timeout=60)
        except requests.RequestException as err:  # a refused or reset connection counts as refused
            return 0, str(err).encode()
        return reply.status_code, reply.content

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        other = pool.submit(other_client_answers, 40)
        flood = [pool.submit(hit, capabilities) for _ in range(FLOOD_CAPABILITIES)]
        flood += [pool.submit(hit, execute) for _ in range(FLOOD_EXECUTES)]
        answers = [f.result() for f in flood]
        others = other.result()

    statuses = [status for status, _ in answers]
    # The flooding client gets answers or ServerBusy, nothing else: no 5xx but 503, no hang.
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    for status, body in answers:
        if status == 503:
            assert ET.fromstring(body).find(f"{OWS}Exception").get("exceptionCode") == "ServerBusy", body[:300]
    assert statuses.count(503) > 0, "nothing was refused: the per-client limit did not bite"
    # The other client was answered all along.
    assert others and all(status == 200 for status, _ in others), others
    assert max(secs for _, secs in others) < 5, others
    # Every Execute that was accepted succeeds.
    locations = [ET.fromstring(body).get("statusLocation") for status, body in answers[FLOOD_CAPABILITIES:]
                 if status == 200]
    for location in locations:
        execution, _ = poll(lambda location=location: requests.get(location, timeout=10).content,
                            timeout=300, interval=1)
        assert execution.status == "ProcessSucceeded", (location, execution.statusMessage)
    print(f"flood: {statuses.count(200)} answered, {statuses.count(503)} refused (503 ServerBusy); "
          f"{len(locations)} Execute accepted, all succeeded; other client {len(others)} requests, "
          f"slowest {max(secs for _, secs in others):.2f} s")
