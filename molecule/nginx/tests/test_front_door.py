"""nginx as the front door: its own errors, per-client limits, headers, Host.

Every error nginx answers itself must be an OGC ExceptionReport (OWS 1.1, as
WPS 1.0.0 uses it) with the right status and exceptionCode, read back here
both strictly (lxml) and the way a WPS client does (OWSLib). Clients are told
apart by their source address: 127.0.0.1 is exempt from the limits in this
scenario (inventory/group_vars/all/test.yml), 127.0.0.2 and up are ordinary
clients, all on the loopback of the one container.
"""

from __future__ import annotations

import json
import shlex
import time
from collections import Counter

import pytest
from lxml import etree
from nginxclient import CURL, EXEMPT, Reply, fetch
from owslib.wps import WPSExecution

OWS = "http://www.opengis.net/ows/1.1"
CLIENT, OTHER, THIRD = "127.0.0.2", "127.0.0.3", "127.0.0.4"
# The role's defaults, which this scenario keeps (defaults/main.yml).
WPS_BURST, OUTPUTS_BURST, WPS_CONN, RETRY_AFTER = 20, 100, 3, "5"


def exception_code(reply: Reply) -> str:
    """The exceptionCode of an ExceptionReport, checked the strict way and OWSLib's way."""
    assert reply.header("content-type") == "application/xml", reply.headers
    root = etree.fromstring(reply.body)
    assert root.tag == f"{{{OWS}}}ExceptionReport" and root.get("version") == "1.0.0"
    exceptions = root.findall(f"{{{OWS}}}Exception")
    assert len(exceptions) == 1
    assert exceptions[0].findtext(f"{{{OWS}}}ExceptionText").strip()
    execution = WPSExecution()
    execution.checkStatus(response=reply.body, sleepSecs=0)
    assert execution.status == "Exception" and len(execution.errors) == 1
    assert execution.errors[0].code == exceptions[0].get("exceptionCode")
    return execution.errors[0].code


def burst(urls: list[str], source: str) -> str:
    """The shell command fetching URLS with one curl from SOURCE, one after another on
    one connection, printing each status."""
    targets = " ".join(f"-o /dev/null {shlex.quote(u)}" for u in urls)
    return f"{CURL} --interface {source} -w '%{{http_code}}\\n' {targets}"


def statuses(host, urls: list[str], source: str) -> list[int]:
    """Statuses of URLS fetched in a burst from SOURCE."""
    return [int(code) for code in host.check_output(burst(urls, source)).split()]


@pytest.mark.parametrize(
    ("args", "url", "status", "code"),
    [
        ((), "https://wps.test/wps/extra", 404, "NoApplicableCode"),
        ((), "https://wps.test/nothing-here", 404, "NoApplicableCode"),
        (("-X", "PUT"), "https://wps.test/wps", 405, "NoApplicableCode"),
        (("-X", "DELETE"), "https://wps.test/wps", 405, "NoApplicableCode"),
        (("-X", "POST", "--data", "x"), "https://wps.test/wpsoutputs/status.xml", 405, "NoApplicableCode"),
        (("--data-binary", "@/tmp/over-limit"), "https://wps.test/wps", 413, "FileSizeExceeded"),
        (("--http1.1", "--data-binary", "@/tmp/over-limit"), "https://wps.test/wps", 413, "FileSizeExceeded"),
        ((), "https://wps.test/wps?x=" + "a" * 4074, 414, "NoApplicableCode"),  # URI of 4081 bytes
        (("--http1.1",), "https://wps.test/wps?x=" + "a" * 4074, 414, "NoApplicableCode"),
        (("--http1.1",), "https://wps.test/wps?x=" + "a" * 9000, 414, "NoApplicableCode"),  # over the buffer
        (("--http1.1", "-H", "X-Big: " + "a" * 9000), "https://wps.test/wps", 400, "NoApplicableCode"),
        (("--http1.1",), "http://127.0.0.1:443/wps", 400, "NoApplicableCode"),  # plain HTTP to the TLS port
        (("-H", "Host: attacker.example"), "https://wps.test/wps", 400, "NoApplicableCode"),
        (("-k", "--resolve", "attacker.example:443:127.0.0.1"), "https://attacker.example/wps", 400,
         "NoApplicableCode"),
    ],
    ids=[
        "404-under-wps", "404-elsewhere", "405-put", "405-delete", "405-post-output", "413-http2", "413-http1",
        "414-regex-http2", "414-regex-http1", "414-buffer", "400-header-too-large", "400-http-to-https-port",
        "400-unknown-host", "400-unknown-sni-and-host",
    ],
)
def test_nginx_errors_are_exception_reports(host, args, url, status, code):
    host.check_output("test -f /tmp/over-limit || head -c 1100000 /dev/zero > /tmp/over-limit")
    reply = fetch(host, url, *args)
    assert reply.status == status
    assert exception_code(reply) == code
    assert reply.header("x-content-type-options") == "nosniff"
    assert reply.header("cache-control") == "no-store"


def test_a_uri_within_the_limit_reaches_the_app(host):
    reply = fetch(host, "https://wps.test/wps?x=" + "a" * 4073)  # 4080 bytes: the limit itself
    assert reply.status == 200
    assert reply.header("content-type") == "application/json"


def test_405_names_the_allowed_methods(host):
    assert fetch(host, "https://wps.test/wps", "-X", "PUT").header("allow") == "GET, POST"
    assert fetch(host, "https://wps.test/wpsoutputs/status.xml", "-X", "DELETE").header("allow") == "GET, HEAD"
    assert fetch(host, "https://wps.test/health", "-X", "POST").header("allow") == "GET, HEAD"
    # TRACE is refused before any location is chosen: the Allow header still fits the resource.
    reply = fetch(host, "https://wps.test/wps?service=WPS", "--http1.1", "-X", "TRACE")
    assert (reply.status, reply.header("allow")) == (405, "GET, POST")
    assert exception_code(reply) == "NoApplicableCode"
    assert fetch(host, "https://wps.test/wps").header("allow") is None


def test_the_apps_own_errors_pass_untouched(host):
    """Only nginx's own errors are replaced: the app's (PyWPS's reports) pass as they are."""
    reply = fetch(host, "https://wps.test/wps?status=503&retry_after=7")
    assert reply.status == 503
    assert reply.header("content-type") == "application/json"
    assert reply.header("retry-after") == "7"  # the app's, not doubled by nginx's
    reply = fetch(host, "https://wps.test/wps?status=500")
    assert (reply.status, reply.header("content-type")) == (500, "application/json")


def test_app_down_is_a_502_exception_report(host):
    host.check_output("systemctl stop pwg-test-upstream")
    try:
        started = time.monotonic()
        # no-cache: past nginx's discovery cache, to the app.
        reply = fetch(host, "https://wps.test/wps?service=WPS&request=GetCapabilities", "--max-time", "10",
                      "-H", "Cache-Control: no-cache")
        assert time.monotonic() - started < 5
        assert reply.status == 502
        assert exception_code(reply) == "NoApplicableCode"
    finally:
        host.check_output("systemctl start pwg-test-upstream")
        # A simple unit is "started" before its socket listens: wait for it, so
        # that the next test does not meet the same 502.
        deadline = time.monotonic() + 20
        while fetch(host, "https://wps.test/wps?ready=1").status == 502:
            assert time.monotonic() < deadline, "the stand-in upstream did not come back"
            time.sleep(0.2)


def test_a_slow_app_is_waited_for_within_its_timeout_and_a_504_after(host):
    """The app's limit is 3 s and nginx's margin 2 s here: 4 s is answered, 8 s cut at 5 s."""
    started = time.monotonic()
    assert fetch(host, "https://wps.test/wps?sleep=4").status == 200
    assert time.monotonic() - started >= 4
    started = time.monotonic()
    reply = fetch(host, "https://wps.test/wps?sleep=8")
    waited = time.monotonic() - started
    assert reply.status == 504
    assert exception_code(reply) == "NoApplicableCode"
    assert 5 <= waited < 7, waited


def test_a_burst_from_one_client_is_limited_while_others_are_answered(host):
    urls = [f"https://wps.test/wps?n={i}" for i in range(60)]
    # The same client right after its burst: refused, with a ServerBusy report and Retry-After.
    reply = fetch(host, "https://wps.test/wps", source=CLIENT, before=f"{burst(urls, CLIENT)} > /tmp/burst;")
    seen = [int(code) for code in host.file("/tmp/burst").content_string.split()]
    counts = Counter(seen)
    assert set(counts) == {200, 503}, counts
    # The burst passes at once; then about one request per 100 ms (10 r/s).
    assert WPS_BURST + 1 <= counts[200] <= WPS_BURST + 10, counts
    assert seen[: WPS_BURST + 1] == [200] * (WPS_BURST + 1)
    assert reply.status == 503
    assert exception_code(reply) == "ServerBusy"
    assert reply.header("retry-after") == RETRY_AFTER
    # Another client, and the exempt address, are answered meanwhile.
    assert fetch(host, "https://wps.test/wps", source=OTHER).status == 200
    assert Counter(statuses(host, urls, EXEMPT)) == {200: 60}
    # The outputs have their own, looser limit: the refused client still reads them.
    assert Counter(statuses(host, ["https://wps.test/wpsoutputs/status.xml"] * 60, CLIENT)) == {200: 60}


def test_outputs_limit_bites_later(host):
    seen = Counter(statuses(host, ["https://wps.test/wpsoutputs/result.json"] * 200, THIRD))
    assert set(seen) == {200, 503}, seen
    assert OUTPUTS_BURST + 1 <= seen[200] <= OUTPUTS_BURST + 40, seen


def test_concurrent_requests_of_one_client_are_limited(host):
    time.sleep(1)  # THIRD's /wps bucket is untouched; its outputs burst is not involved
    urls = [f"https://wps.test/wps?sleep=2&n={i}" for i in range(WPS_CONN + 2)]
    targets = " ".join(f"-o /dev/null {shlex.quote(u)}" for u in urls)
    out = host.check_output(
        f"{CURL} --interface {THIRD} --parallel --parallel-immediate --parallel-max 10 "
        f"-w '%{{http_code}} %{{time_total}}\\n' {targets}"
    )
    results = [(int(code), float(seconds)) for code, seconds in (line.split() for line in out.splitlines())]
    assert sorted(code for code, _ in results) == [200] * WPS_CONN + [503] * 2, results
    assert all(seconds < 1 for code, seconds in results if code == 503), results  # refused at once


def test_nosniff_everywhere(host):
    for url in ("https://wps.test/wps", "https://wps.test/wpsoutputs/result.json", "https://wps.test/health",
                "https://wps.test/", "https://wps.test/missing", "http://127.0.0.1/wps"):
        assert fetch(host, url).header("x-content-type-options") == "nosniff", url


def test_no_server_version(host):
    assert fetch(host, "https://wps.test/missing").header("server") == "nginx"
    assert b"nginx/" not in fetch(host, "https://wps.test/missing").body


def test_no_host_header_goes_into_a_redirect(host):
    hostile = ("-H", "Host: attacker.example")
    # Plain HTTP: to the configured name, whatever the Host said.
    reply = fetch(host, "http://127.0.0.1/wps?service=WPS", *hostile)
    assert (reply.status, reply.header("location")) == (301, "https://wps.test/wps?service=WPS")
    # nginx's own redirects are relative.
    assert fetch(host, "https://wps.test/", "-H", "Host: wps.test:8443").header("location") == (
        "/wps?service=WPS&request=GetCapabilities")
    assert fetch(host, "https://wps.test/wpsoutputs/job1").header("location") == "/wpsoutputs/job1/"
    # Over HTTPS an unknown Host is refused, never redirected.
    reply = fetch(host, "https://wps.test/", *hostile)
    assert reply.status == 400 and reply.header("location") is None
    assert b"attacker" not in reply.body


def test_the_app_gets_a_fixed_host_and_the_clients_own_address(host):
    reply = fetch(
        host, "https://wps.test/wps", "-H", "Host: 127.0.0.1", "-H", "X-Forwarded-For: 192.0.2.66",
        "-H", "X-Real-IP: 192.0.2.66", "-H", "Forwarded: for=192.0.2.66", "-H", "X-Forwarded-Host: attacker.example",
        source=OTHER,
    )
    assert reply.status == 200  # an IP address as Host is accepted
    seen = {k.lower(): v for k, v in json.loads(reply.body)["headers"].items()}
    assert seen["host"] == "wps.test"
    assert seen["x-forwarded-for"] == OTHER and seen["x-real-ip"] == OTHER
    assert "forwarded" not in seen and "x-forwarded-host" not in seen


def test_health_only_from_listed_addresses(host):
    assert fetch(host, "https://wps.test/health").status == 200
    reply = fetch(host, "https://wps.test/health", source=OTHER)
    assert reply.status == 403
    assert exception_code(reply) == "NoApplicableCode"
    # Not even through the container's own network address.
    address = host.check_output("ip -4 -o route get 1.1.1.1").split(" src ")[1].split()[0]
    run = host.run(f"curl -sS -k -o /dev/null -w '%{{http_code}}' https://{address}/health")
    assert run.stdout == "403"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/wpsoutputs/.hidden", 404),
        ("/wpsoutputs/job1/.nfs0000000001", 404),
        ("/wpsoutputs/job1/leak.txt", 403),  # a link to a file of another owner
        ("/wpsoutputs/", 403),
        ("/wpsoutputs/job1/", 403),
        ("/wpsoutputs/../etc/passwd", 404),
        ("/wpsoutputs/../../etc/passwd", 400),
        ("/wpsoutputs/%2e%2e/%2e%2e/etc/passwd", 400),
        ("/wpsoutputs/job1/..%2f..%2f..%2fetc/hostname", 400),
        ("/wpsoutputs/%2e%2e%2fsrv/wps/outputs/status.xml", 404),
    ],
)
def test_outputs_refuse_hidden_files_links_listing_and_traversal(host, path, status):
    reply = fetch(host, "https://wps.test" + path, "--path-as-is")
    assert reply.status == status
    assert exception_code(reply) == "NoApplicableCode"
    assert host.file("/srv/wps/outputs/job1/result.csv").exists  # there to be served, not these



def test_the_ogc_api_is_passed_on_with_its_methods(host):
    for method in ("GET", "POST", "DELETE"):
        reply = fetch(host, "https://wps.test/ogcapi/jobs/x", "-X", method)
        assert reply.status == 200 and json.loads(reply.body)["method"] == method, reply.body
    assert json.loads(fetch(host, "https://wps.test/ogcapi").body)["path"] == "/ogcapi"
    reply = fetch(host, "https://wps.test/ogcapi/jobs", "-X", "PUT")
    assert (reply.status, reply.header("allow")) == (405, "GET, POST, DELETE")
    assert exception_code(reply) == "NoApplicableCode"
    assert fetch(host, "https://wps.test/ogcapiX").status == 404  # only the prefix itself and what is under it


def test_a_client_cannot_name_its_own_user(host):
    """Without identity (nginx_identity none) the identity header never reaches the app, whatever a client sends."""
    reply = fetch(host, "https://wps.test/ogcapi/jobs", "-H", "X-Remote-User: root", source=OTHER)
    seen = {k.lower() for k in json.loads(reply.body)["headers"]}
    assert "x-remote-user" not in seen
    reply = fetch(host, "https://wps.test/wps", "-H", "X-Remote-User: root", source=OTHER)
    assert "x-remote-user" not in {k.lower() for k in json.loads(reply.body)["headers"]}
