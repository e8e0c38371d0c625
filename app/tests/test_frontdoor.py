"""The front door (:mod:`pywps_gridengine.frontdoor`): what the corpus's table cannot say."""

from __future__ import annotations

import io
import logging
import sqlite3

from lxml import etree
from werkzeug.test import EnvironBuilder, run_wsgi_app
from wpstest import app_client

from pywps_gridengine import frontdoor
from pywps_gridengine.wsgi import create_service, make_app

OWS = "{http://www.opengis.net/ows/1.1}"
EX = {"service": "WPS", "request": "Execute", "version": "1.0.0"}


def exception_of(body: bytes) -> etree._Element:
    return etree.fromstring(body).find(f"{OWS}Exception")


def test_exception_report_is_well_formed_whatever_the_text():
    body = frontdoor.exception_report("InvalidParameterValue", "a\x00b\x1b<c>&\ud800", "in\x01put")
    exception = exception_of(body)
    assert exception.get("locator") == "in\\x01put"
    assert exception.findtext(f"{OWS}ExceptionText") == "a\\x00b\\x1b<c>&\\ud800"


def test_textfile_raw_output_is_sent_from_its_file_then_removed(make_env):
    env = make_env(mode="default")
    client = app_client(env.config)
    resp = client.get("/wps", query_string={**EX, "identifier": "textfile", "datainputs": "lines=3",
                                            "RawDataOutput": "output@mimeType=text/csv"})
    assert resp.status_code == 200
    assert resp.get_data() == b"n,square\n1,1\n2,4\n3,9\n"
    assert resp.headers["Content-Type"].startswith("text/csv")
    resp.close()  # what the WSGI server does once the body is sent
    assert list(env.workdir.glob("pywps_process_*")) == []


def test_raw_literal_is_text_plain_whatever_was_asked(make_env):
    client = app_client(make_env(mode="default").config)
    resp = client.get("/wps", query_string={**EX, "identifier": "hello", "datainputs": "name=x",
                                            "RawDataOutput": "output@mimeType=text/plain"})
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/plain")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_health_has_nosniff(make_env):
    resp = app_client(make_env(mode="default").config).get("/health")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_method_not_allowed_names_the_allowed_ones(make_env):
    resp = app_client(make_env(mode="default").config).open("/wps", method="PUT")
    assert resp.status_code == 405 and resp.headers["Allow"] == "GET, POST"
    assert exception_of(resp.get_data()).get("exceptionCode") == "NoApplicableCode"


def test_body_without_length_over_the_limit_is_413(make_env):
    env = make_env(mode="default")
    app = make_app(create_service(env.config), env.config)
    environ = EnvironBuilder(path="/wps", method="POST").get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    environ["wsgi.input"] = io.BytesIO(b"<" * (3 * 1024 * 1024 + 1))
    app_iter, status, _ = run_wsgi_app(app, environ, buffered=True)
    assert status.startswith("413")
    assert exception_of(b"".join(app_iter)).get("exceptionCode") == "FileSizeExceeded"


def test_an_error_escaping_the_app_is_a_report_without_traceback(make_env, caplog):
    def broken(environ, start_response):
        raise RuntimeError("secret detail")

    app = frontdoor.FrontDoor(broken, 1024)
    logger = logging.getLogger("PYWPS")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.ERROR, logger="PYWPS")
    try:
        app_iter, status, headers = run_wsgi_app(app, EnvironBuilder(path="/wps").get_environ(), buffered=True)
    finally:
        logger.removeHandler(caplog.handler)
    body = b"".join(app_iter)
    assert status.startswith("500") and dict(headers)["X-Content-Type-Options"] == "nosniff"
    assert b"secret detail" not in body and b"Traceback" not in body
    assert exception_of(body).get("exceptionCode") == "NoApplicableCode"
    assert "secret detail" in caplog.text and "Traceback" in caplog.text  # logged, with its traceback


def test_refused_sync_request_leaves_no_row(make_env):
    env = make_env(mode="default")
    client = app_client(env.config)
    assert client.get("/wps", query_string={**EX, "identifier": "hello", "datainputs": "name=x"}).status_code == 200
    resp = client.get("/wps", query_string={**EX, "identifier": "sleep", "datainputs": "delay=3600"})
    assert resp.status_code == 400
    text = exception_of(resp.get_data()).findtext(f"{OWS}ExceptionText")
    assert "storeExecuteResponse=true" in text and "240 s" in text
    with sqlite3.connect(env.root / "wps.sqlite") as db:
        assert db.execute("SELECT identifier FROM pywps_requests").fetchall() == [("hello",)]


def test_sync_limit_comes_from_the_configuration(make_env):
    env = make_env(mode="default", extra="[gridengine]\nsync_max_runtime = 4\n")
    assert env.config.sync_max_runtime == 4
    client = app_client(env.config)
    assert client.get("/wps", query_string={**EX, "identifier": "sleep", "datainputs": "delay=1"}).status_code == 400
    assert client.get("/wps", query_string={**EX, "identifier": "sleep", "datainputs": "delay=0.5"}).status_code == 200


def test_process_may_forbid_synchronous_runs(make_env, monkeypatch):
    from pywps_gridengine.processes.hello import Hello

    monkeypatch.setattr(Hello, "synchronous", False)
    client = app_client(make_env(mode="default").config)
    resp = client.get("/wps", query_string={**EX, "identifier": "hello", "datainputs": "name=x"})
    assert resp.status_code == 400
    assert exception_of(resp.get_data()).get("locator") == "storeExecuteResponse"


# nginx keeps discovery answers (GetCapabilities, DescribeProcess) in its cache for a while: they must carry
# nothing that stops it, and no error may ever be kept, whichever layer answered it.
UNCACHEABLE = ("Cache-Control", "Expires", "Set-Cookie", "Vary", "X-Accel-Expires", "Pragma")


def test_discovery_answers_carry_nothing_against_caching(make_env):
    client = app_client(make_env(mode="default").config)
    for query in ({"service": "WPS", "request": "GetCapabilities"},
                  {"service": "WPS", "request": "GetCapabilities", "acceptversions": "1.0.0"},
                  {"service": "WPS", "request": "DescribeProcess", "version": "1.0.0", "identifier": "hello"},
                  {"service": "WPS", "request": "DescribeProcess", "version": "1.0.0", "identifier": "all"}):
        resp = client.get("/wps", query_string=query)
        assert resp.status_code == 200, (query, resp.get_data())
        assert [name for name in UNCACHEABLE if name in resp.headers] == [], (query, resp.headers)


def test_every_error_answer_is_no_store(make_env):
    client = app_client(make_env(mode="default").config)
    errors = [
        client.get("/wps", query_string={"service": "WPS", "request": "DescribeProcess", "version": "1.0.0",
                                         "identifier": "nosuch"}),  # the front door's own check
        client.get("/wps", query_string={"service": "WPS", "request": "DescribeProcess"}),  # version missing
        client.get("/wps", query_string={"service": "WPS", "request": "GetCapabilities",
                                         "acceptversions": "9.9.9"}),  # PyWPS's VersionNegotiationFailed
        client.get("/wps", query_string={"service": "WPS", "request": "GetStatus", "version": "2.0.0"}),  # no jobId
        client.get("/ogcapi/processes/nosuch"),  # the OGC API's 404
        client.get("/wps", query_string={"service": "WPS", "request": "GetCapabilities", "REQUEST": "Execute"}),
        client.open("/wps", method="PUT"),
    ]
    assert [resp.status_code for resp in errors] == [400, 400, 400, 400, 404, 400, 405]
    for resp in errors:
        assert resp.headers.get_all("Cache-Control") == ["no-store"], (resp.status_code, resp.headers)


def test_an_error_keeps_no_cache_header_of_the_layer_below(make_env):
    """Whatever a middleware or PyWPS said about caching, the front door's no-store is the one header."""

    def cacheable_error(environ, start_response):
        start_response("400 Bad Request", [("Content-Type", "text/xml"), ("Cache-Control", "max-age=600")])
        return [frontdoor.exception_report("InvalidParameterValue", "bad", "x")]

    def fine(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/xml")])
        return [b"<ok/>"]

    _, status, headers = run_wsgi_app(frontdoor.FrontDoor(cacheable_error, 1024),
                                      EnvironBuilder(path="/wps").get_environ(), buffered=True)
    assert status.startswith("400")
    assert [v for k, v in headers if k.lower() == "cache-control"] == ["no-store"]
    _, status, headers = run_wsgi_app(frontdoor.FrontDoor(fine, 1024), EnvironBuilder(path="/wps").get_environ(),
                                      buffered=True)
    assert status.startswith("200") and "Cache-Control" not in dict(headers)
