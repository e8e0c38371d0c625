"""Inputs by reference fetched under the policy (:mod:`pywps_gridengine.fetch`).

A real HTTP server on 127.0.0.1 in a thread serves the references; the tests
that fetch allow 127.0.0.1/32 explicitly (``[fetch] allowed_networks``), so
what is tested is the policy, not an exception for tests. Refusals go through
the WSGI app (an Execute of ``wordcount``) and check the answer, that the
server was never reached and that nothing was left behind.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import quoteattr

import pytest
from corpus import references
from lxml import etree
from pywps import Service
from pywps.tests import client_for
from wpstest import NS, app_client, status_of, status_text, uuid_from_status_location, xml

from pywps_gridengine import compat, fetch
from pywps_gridengine.config import ConfigError, load
from pywps_gridengine.fetch import FetchPolicy, FetchRefused
from pywps_gridengine.processes.wordcount import WordCount
from pywps_gridengine.scheduler import GridEngineScheduler

TEXT = b"the quick brown fox jumps over the lazy dog the end\n"
ALLOW_LOCAL = "[fetch]\nallowed_networks = 127.0.0.1/32\nread_timeout = 0.5\ntotal_timeout = 2\n"


# -- the server the references point at -------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    host: str
    body: bytes


@dataclass
class Server:
    base: str
    port: int
    seen: list[Seen] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append(Seen(self.command, self.path, self.headers.get("Host", ""), body))
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/text":
            self._answer(200, TEXT, {"Content-Type": "text/plain"})
        elif parts.path == "/echo":
            self._answer(200, f"{self.command} {body.decode()}".encode(), {"Content-Type": "text/plain"})
        elif parts.path == "/redirect":
            self._answer(int(query.get("status", "302")), b"", {"Location": query["to"]})
        elif parts.path == "/loop":
            self._answer(302, b"", {"Location": "/loop"})
        elif parts.path == "/missing":
            self._answer(404, b"not here")
        elif parts.path == "/declared-big":
            self.send_response(200)
            self.send_header("Content-Length", str(50 * 2**20))
            self.end_headers()
            self.wfile.write(b"x" * 1024)
        elif parts.path == "/big":  # no Content-Length: the size is known only by reading
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for _ in range(64):  # 4 MiB, past the 1 MiB maxsingleinputsize of the tests
                    self.wfile.write(b"y" * 65536)
            except OSError:
                pass
            self.close_connection = True
        elif parts.path == "/slow":  # headers only after longer than the read timeout
            time.sleep(float(query.get("delay", "3")))
            self._answer(200, TEXT)
        elif parts.path == "/drip":  # a byte at a time, each within the read timeout, forever
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b"z")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
            self.close_connection = True
        else:
            self._answer(404)


def _serve(host: str, context: ssl.SSLContext | None = None) -> Iterator[Server]:
    httpd = ThreadingHTTPServer((host, 0), _Handler)
    httpd.daemon_threads = True
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    port = httpd.server_address[1]
    server = Server(base=f"http://{host}:{port}", port=port)
    httpd.seen = server.seen  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    yield from _serve("127.0.0.1")


@pytest.fixture
def server2() -> Iterator[Server]:
    """A second server, on another loopback address the tests never allow."""
    yield from _serve("127.0.0.2")


@pytest.fixture(autouse=True)
def _default_policy() -> Iterator[None]:
    yield
    fetch.configure(FetchPolicy())  # no test leaves its allowance to the next


# -- requests ----------------------------------------------------------------------------------


def execute_xml(href: str, attributes: str = "", inner: str = "", async_: bool = False) -> bytes:
    response_form = ('<wps:ResponseForm><wps:ResponseDocument storeExecuteResponse="true" status="true">'
                     '<wps:Output><ows:Identifier>output</ows:Identifier></wps:Output>'
                     '</wps:ResponseDocument></wps:ResponseForm>') if async_ else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0"
    xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink">
  <ows:Identifier>wordcount</ows:Identifier>
  <wps:DataInputs><wps:Input><ows:Identifier>text</ows:Identifier>
    <wps:Reference xlink:href={quoteattr(href)} mimeType="text/plain"{attributes}>{inner}</wps:Reference>
  </wps:Input></wps:DataInputs>{response_form}
</wps:Execute>""".encode()


def post(client: Any, body: bytes) -> Any:
    return client.post("/wps", data=body, headers={"Content-Type": "text/xml"})


def exception(resp: Any) -> tuple[int, str, str, str]:
    doc = xml(resp.data)
    exc = doc.find("ows:Exception", NS)
    assert exc is not None, resp.data
    return resp.status_code, exc.get("exceptionCode"), exc.get("locator"), exc.findtext("ows:ExceptionText",
                                                                                        namespaces=NS)


def words(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.data
    doc = xml(resp.data)
    assert status_of(doc) == "ProcessSucceeded", status_text(doc)
    return json.loads(doc.findtext(".//wps:ComplexData", namespaces=NS))


def assert_nothing_left(env: Any) -> None:
    """No work directory, status document or output of the request (the service's own probe files aside)."""
    for where in (env.workdir, env.outputs):
        left = [p.name for p in where.iterdir() if not p.name.startswith(".pywps-gridengine-probe")]
        assert left == [], left


# -- through the service: refusals -------------------------------------------------------------


@pytest.mark.parametrize("href", [
    "http://127.0.0.1:{port}/text",
    "http://localhost:{port}/text",
    "http://2130706433:{port}/text",
    "http://0177.0.0.1:{port}/text",
    "http://[::ffff:127.0.0.1]:{port}/text",
])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_loopback_is_refused_before_anything_is_fetched(make_env, server, href, mode):
    env = make_env(mode="default")
    client = app_client(env.config)
    resp = post(client, execute_xml(href.format(port=server.port), async_=(mode == "async")))
    status, code, locator, text = exception(resp)
    assert (status, code, locator) == (400, "InvalidParameterValue", "text")
    assert "loopback" in text and "public addresses" in text
    assert server.seen == []
    assert_nothing_left(env)


def test_allowed_reference_is_fetched_and_counted(make_env, server):
    env = make_env(mode="default", extra=ALLOW_LOCAL)
    resp = post(app_client(env.config), execute_xml(server.url("/text")))
    assert words(resp)["words"] == 11
    assert [(s.method, s.path, s.host) for s in server.seen] == [("GET", "/text", f"127.0.0.1:{server.port}")]


def test_an_allowance_names_exactly_what_it_allows(make_env, server):
    """127.0.0.1/32 allowed does not allow ::1 or 127.0.0.2, nor a name resolving to loopback twice."""
    env = make_env(mode="default", extra=ALLOW_LOCAL)
    resp = post(app_client(env.config), execute_xml(f"http://127.0.0.2:{server.port}/text"))
    assert exception(resp)[:3] == (400, "InvalidParameterValue", "text")
    assert server.seen == []


def test_each_redirect_hop_is_checked(make_env, server, server2):
    env = make_env(mode="default", extra=ALLOW_LOCAL)
    client = app_client(env.config)
    for target in (server2.url("/text", host="127.0.0.2"), "http://169.254.169.254/latest/meta-data/",
                   "file:///etc/passwd", "http://[::1]/"):
        resp = post(client, execute_xml(server.url(f"/redirect?to={target}")))
        status, code, locator, text = exception(resp)
        assert (status, code, locator) == (400, "InvalidParameterValue", "text"), text
    assert server2.seen == []
    assert [s.path.split("?")[0] for s in server.seen] == ["/redirect"] * 4
    assert_nothing_left(env)


def test_an_allowed_redirect_is_followed_and_a_loop_is_cut(make_env, server):
    env = make_env(mode="default", extra=ALLOW_LOCAL + "max_redirects = 3\n")
    client = app_client(env.config)
    assert words(post(client, execute_xml(server.url("/redirect?to=/text&status=307"))))["words"] == 11
    server.seen.clear()
    status, code, locator, text = exception(post(client, execute_xml(server.url("/loop"))))
    assert (status, code, locator) == (400, "InvalidParameterValue", "text")
    assert "redirects more than 3 times" in text
    assert len(server.seen) == 4  # the first request and three redirects followed
    assert_nothing_left(env)


@pytest.mark.parametrize(("path", "code", "says"), [
    ("/big", "FileSizeExceeded", "larger than the 1 MiB"),
    ("/declared-big", "FileSizeExceeded", "larger than the 1 MiB"),
    ("/missing", "InvalidParameterValue", "answered 404"),
    ("/slow", "InvalidParameterValue", "did not answer within 0.5 s"),
    ("/drip", "InvalidParameterValue", "took longer than 2 s"),
])
def test_size_status_and_time_are_bounded(make_env, server, path, code, says):
    env = make_env(mode="default", extra=ALLOW_LOCAL)
    started = time.monotonic()
    status, exc_code, locator, text = exception(post(app_client(env.config), execute_xml(server.url(path))))
    elapsed = time.monotonic() - started
    assert (status, exc_code, locator) == (400, code, "text")
    assert says in text, text
    assert elapsed < 3.5  # total_timeout 2 s, read_timeout 0.5 s
    assert_nothing_left(env)  # no partial download left in the work directory


def test_a_closed_port_is_a_clear_refusal(make_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    env = make_env(mode="default", extra=ALLOW_LOCAL)
    status, code, locator, text = exception(post(app_client(env.config),
                                                 execute_xml(f"http://127.0.0.1:{port}/x")))
    assert (status, code, locator) == (400, "InvalidParameterValue", "text")
    assert f"could not connect to 127.0.0.1 on port {port}" in text


def test_post_is_refused_unless_the_process_allows_it(make_env, server):
    env = make_env(mode="default", extra=ALLOW_LOCAL)
    client = app_client(env.config)
    for inner in ("<wps:Body>hello</wps:Body>", f'<wps:BodyReference xlink:href="{server.url("/text")}"/>', ""):
        status, code, locator, text = exception(post(client, execute_xml(server.url("/echo"), ' method="POST"',
                                                                         inner)))
        assert (status, code, locator) == (400, "InvalidParameterValue", "text")
        assert "GET only" in text
    assert server.seen == []
    assert_nothing_left(env)


class PostWordCount(WordCount):
    post_reference_inputs = frozenset({"text"})


def test_post_where_the_process_allows_it(make_env, server):
    env = make_env(mode="default", extra=ALLOW_LOCAL)
    process = PostWordCount()
    process.app_config = env.config
    client = client_for(Service(processes=[process], cfgfiles=[str(env.cfg)]))
    resp = post(client, execute_xml(server.url("/echo"), ' method="POST"', "<wps:Body>one two</wps:Body>"))
    assert words(resp)["top"] == [["one", 1], ["post", 1], ["two", 1]]
    server.seen.clear()
    body_ref = f'<wps:BodyReference xlink:href="{server.url("/text")}"/>'
    resp = post(client, execute_xml(server.url("/echo"), ' method="POST"', body_ref))
    assert words(resp)["words"] == 12  # "POST" and the eleven words of the body fetched by reference
    assert [(s.method, s.path) for s in server.seen] == [("GET", "/text"), ("POST", "/echo")]
    assert server.seen[1].body == TEXT
    # The body reference is under the policy too.
    body_ref = '<wps:BodyReference xlink:href="http://10.1.2.3/body"/>'
    status, code, locator, text = exception(post(client, execute_xml(server.url("/echo"), ' method="POST"',
                                                                     body_ref)))
    assert (status, code, locator) == (400, "InvalidParameterValue", "text")
    assert "private address" in text


# -- asynchronous jobs: checked on the web host, and again where the job fetches --------------


def test_async_job_whose_fetch_is_refused_on_the_exec_host_fails_with_the_reason(make_env, server, monkeypatch,
                                                                                 tmp_path):
    from test_scheduler_launcher import RecordingSubmitter, run_on_exec_host

    monkeypatch.chdir(tmp_path)
    env = make_env(mode="scheduler", extra="[gridengine]\nqueue = wps.q\n\n" + ALLOW_LOCAL)
    submitter = RecordingSubmitter()
    monkeypatch.setattr(GridEngineScheduler, "submitter", submitter)
    resp = post(app_client(env.config), execute_xml(server.url("/redirect?to=http://[::1]/"), async_=True))
    assert resp.status_code == 200, resp.data
    uuid = uuid_from_status_location(xml(resp.data))
    assert server.seen == []  # an asynchronous request is checked on the web host, not fetched there
    assert len(submitter.specs) == 1
    assert run_on_exec_host(env, submitter.specs[0], monkeypatch) == 0
    doc = env.status_doc(uuid)
    assert status_of(doc) == "ProcessFailed"
    text = status_text(doc)
    assert "The input text is given by reference and is not fetched" in text
    assert "::1 is a loopback address" in text
    assert "Traceback" not in etree.tostring(doc).decode()
    assert [s.path.split("?")[0] for s in server.seen] == ["/redirect"]


def test_the_exec_host_applies_its_own_policy(make_env, server, monkeypatch, tmp_path):
    """Allowed when the web host checked it, refused when the job runs under a stricter configuration."""
    from test_scheduler_launcher import RecordingSubmitter, run_on_exec_host

    monkeypatch.chdir(tmp_path)
    env = make_env(mode="scheduler", extra="[gridengine]\nqueue = wps.q\n\n" + ALLOW_LOCAL)
    submitter = RecordingSubmitter()
    monkeypatch.setattr(GridEngineScheduler, "submitter", submitter)
    resp = post(app_client(env.config), execute_xml(server.url("/text"), async_=True))
    uuid = uuid_from_status_location(xml(resp.data))
    env.cfg.write_text(env.cfg.read_text().replace("allowed_networks = 127.0.0.1/32\n", ""))
    assert run_on_exec_host(env, submitter.specs[0], monkeypatch) == 0
    doc = env.status_doc(uuid)
    assert status_of(doc) == "ProcessFailed"
    assert "127.0.0.1 is a loopback address" in status_text(doc)
    assert server.seen == []


# -- the policy itself ------------------------------------------------------------------------


@pytest.mark.parametrize(("address", "says"), [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("10.1.2.3", "private"),
    ("172.31.255.255", "private"), ("192.168.0.1", "private"), ("fd12::1", "private"), ("224.0.0.251", "multicast"),
    ("ff02::1", "multicast"), ("100.64.0.1", "carrier-grade NAT"), ("240.0.0.1", "reserved"),
    ("192.0.0.8", "IETF protocol"), ("198.18.0.1", "private"), ("fec0::1", "site-local"),
    ("::ffff:127.0.0.1", "IPv4-mapped IPv6 form of 127.0.0.1, a loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped IPv6 form of 10.0.0.1, a private"),
    ("2002:7f00:1::1", "6to4 IPv6 form of 127.0.0.1"), ("64:ff9b::a9fe:a9fe", "NAT64 IPv6 form of 169.254.169.254"),
    ("2001::1", "Teredo"), ("2001:db8::1", "private"),
])
def test_special_addresses_are_refused(address, says):
    why = FetchPolicy().address_refusal("h", ipaddress.ip_address(address))
    assert why is not None and says in why, why


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "::ffff:8.8.8.8",
                                     "2002:5db8:d70e::1"])
def test_public_addresses_pass(address):
    assert FetchPolicy().address_refusal("h", ipaddress.ip_address(address)) is None


def test_allowances_and_the_clusters_own_networks():
    policy = FetchPolicy(allowed_hosts=("data.site", ".lan.site"),
                         allowed_networks=(ipaddress.ip_network("10.8.0.0/16"),),
                         refused_networks=(ipaddress.ip_network("93.184.215.0/24"),))
    ip = ipaddress.ip_address
    assert policy.address_refusal("x", ip("10.8.1.1")) is None
    assert policy.address_refusal("x", ip("10.9.1.1")) == "a private address"
    assert policy.address_refusal("data.site", ip("10.9.1.1")) is None
    assert policy.address_refusal("a.lan.site", ip("127.0.0.1")) is None
    assert policy.address_refusal("evil-lan.site", ip("127.0.0.1")) == "a loopback address"
    assert policy.address_refusal("x", ip("93.184.215.14")) == "an address of this service's own network"


def test_every_address_of_a_name_is_checked():
    def resolver(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port))]

    with pytest.raises(FetchRefused, match="the host mixed.test resolves to a private address"):
        FetchPolicy(resolver=resolver).check("http://mixed.test/")


def test_the_connection_goes_to_the_checked_address(server):
    """A name only the policy's resolver knows: the connection cannot have asked DNS again."""
    calls: list[str] = []

    def resolver(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    policy = FetchPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),), resolver=resolver)
    out = BytesIO()
    assert policy.fetch(f"http://pinned.test:{server.port}/text", out, 2**20) == len(TEXT)
    assert out.getvalue() == TEXT
    assert calls == ["pinned.test"]
    assert server.seen[0].host == f"pinned.test:{server.port}"  # the name, not the address, in Host


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, Path, list[str]]]:
    """An https server with a certificate for tls.test only, recording the SNI names it is sent."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=tls.test",
                    "-addext", "subjectAltName=DNS:tls.test", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list[str] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,misc,return-value]
    for server in _serve("127.0.0.1", context):
        yield server, cert, names


def test_tls_names_the_host_while_connecting_to_the_checked_address(tls_server):
    server, cert, names = tls_server

    def resolver(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    policy = FetchPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),), resolver=resolver,
                         verify=str(cert))
    out = BytesIO()
    policy.fetch(f"https://tls.test:{server.port}/text", out, 2**20)
    assert out.getvalue() == TEXT
    assert names == ["tls.test"]
    assert server.seen[0].host == f"tls.test:{server.port}"
    # The certificate is verified against the name asked for, not the address connected to.
    with pytest.raises(FetchRefused, match="TLS connection to other.test failed"):
        policy.fetch(f"https://other.test:{server.port}/text", BytesIO(), 2**20)


def test_numeric_forms_are_read_as_the_resolver_reads_them():
    for host in ("2130706433", "0177.0.0.1", "0x7f.1", "127.1"):
        with pytest.raises(FetchRefused, match="resolves to a loopback address"):
            FetchPolicy().check(f"http://{host}/")


def test_the_default_policy_is_strict_until_configured(make_env):
    fetch.configure(FetchPolicy(allowed_networks=(ipaddress.ip_network("0.0.0.0/0"),)))
    env = make_env(mode="default")
    assert env.config.fetch == FetchPolicy()
    assert fetch.active_policy() == FetchPolicy()  # loading the configuration made its policy the active one


def test_installed_once_and_pywps_signatures_kept():
    from pywps.inout import basic

    compat.install_reference_fetching()
    assert basic.UrlHandler.file.fget.__wrapped__ is compat._PYWPS_URL_FILE
    assert basic.ComplexInput.url_handler.__wrapped__ is compat._PYWPS_URL_HANDLER


# -- configuration ----------------------------------------------------------------------------


def test_fetch_section_is_read_typed(make_env):
    env = make_env(mode="default", extra="[fetch]\nallowed_hosts = Data.Site, .lan.site\n"
                                          "allowed_networks = 10.8.0.0/16 fd00::/8\nrefused_networks = 203.0.113.7\n"
                                          "connect_timeout = 2\nread_timeout = 3.5\ntotal_timeout = 20\n"
                                          "max_redirects = 0\n")
    policy = env.config.fetch
    assert policy == replace(FetchPolicy(), allowed_hosts=("data.site", ".lan.site"),
                             allowed_networks=(ipaddress.ip_network("10.8.0.0/16"), ipaddress.ip_network("fd00::/8")),
                             refused_networks=(ipaddress.ip_network("203.0.113.7/32"),), connect_timeout=2.0,
                             read_timeout=3.5, total_timeout=20.0, max_redirects=0)


@pytest.mark.parametrize(("text", "says"), [
    ("allowed_networks = 10.0.0.1/8", "[fetch] allowed_networks: '10.0.0.1/8'"),
    ("refused_networks = nowhere", "[fetch] refused_networks: 'nowhere'"),
    ("allowed_hosts = http://x", "[fetch] allowed_hosts: 'http://x'"),
    ("read_timeout = soon", "[fetch] read_timeout = 'soon'"),
    ("connect_timeout = 0", "[fetch] connect_timeout = '0'"),
    ("max_redirects = 50", "[fetch] max_redirects = '50'"),
    ("timeout = 5", "[fetch]: unknown key(s) timeout"),
])
def test_fetch_section_errors_name_the_key(make_env, text, says):
    env = make_env(mode="default", extra=f"[fetch]\n{text}\n")
    with pytest.raises(ConfigError) as err:
        load(str(env.cfg))
    assert says in str(err.value)


# -- the corpus's reference cases, against the WSGI app ---------------------------------------


@pytest.mark.parametrize("case", [c for c in references.CASES if c.where in ("app", "both")], ids=lambda c: c.name)
def test_corpus_reference_cases(make_env, case):
    env = make_env(mode="default")
    client = app_client(env.config)
    headers = dict(case.headers)
    if case.method == "POST":
        resp = client.post(case.path, query_string=case.query, data=case.body, headers=headers)
    else:
        resp = client.get(f"{case.path}?{case.query}", headers=headers)
    assert resp.status_code == case.status, resp.data
    doc = etree.fromstring(resp.data)
    exc = doc.find("ows:Exception", NS)
    assert (exc.get("exceptionCode"), exc.get("locator")) == (case.code, case.locator), resp.data
    assert_nothing_left(env)

