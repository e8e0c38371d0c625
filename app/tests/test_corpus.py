"""The project's corpus of hostile requests (``tests/corpus``) against the WSGI app, no cluster.

Each case runs on a fresh service over a throw-away configuration (local
processing mode, SQLite). Beyond the status and exceptionCode/locator the case
states, every answer must: carry ``X-Content-Type-Options: nosniff``; never
show a traceback; never repeat the request's Host header; be a well-formed
ExceptionReport when it is one; and leave nothing behind (no work directory,
no output, no request row still accepted or started).
"""

from __future__ import annotations

import sqlite3

import pytest
from corpus import Case, cases, exception_of
from lxml import etree
from werkzeug.test import EnvironBuilder, run_wsgi_app

from pywps_gridengine.jobs import RequestStatus
from pywps_gridengine.wsgi import create_service, make_app

HOSTILE_HOST = "hostile-host.invalid"
APP_CASES = [case for case in cases() if case.where in ("app", "both")]
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def test_the_corpus_is_large_enough():
    assert len(APP_CASES) >= 100
    assert sum(case.status == 200 for case in APP_CASES) >= 4  # controls: refusing everything cannot pass


def run(app, case: Case) -> tuple[int, dict[str, str], bytes]:
    headers = dict(case.headers)
    headers.setdefault("Host", HOSTILE_HOST)
    builder = EnvironBuilder(path=case.path, method=case.method, query_string=case.query or None,
                             headers=headers, data=case.body if case.method not in ("GET", "HEAD") else None)
    environ = builder.get_environ()
    if case.body:
        environ["CONTENT_TYPE"] = headers.get("Content-Type", "")
    app_iter, status, response_headers = run_wsgi_app(app, environ, buffered=True)  # buffered: closes the answer
    return int(status.split()[0]), dict(response_headers), b"".join(app_iter)


@pytest.mark.parametrize("case", APP_CASES, ids=[case.name for case in APP_CASES])
def test_corpus_case(case: Case, make_env) -> None:
    env = make_env(mode="default")
    app = make_app(create_service(env.config), env.config)
    status, headers, body = run(app, case)

    assert status == case.status, body[:500]
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert b"Traceback" not in body and b'File "' not in body
    assert HOSTILE_HOST not in repr(headers) and HOSTILE_HOST.encode() not in body
    if case.code is not None:
        if case.kind != "ogcapi":
            etree.fromstring(body, parser=PARSER)  # well-formed, without entities
        code, locator, text = exception_of(body)
        assert code == case.code, body
        if case.locator is not None:
            assert locator == case.locator, body
        assert text
    elif status == 200 and "xml" in headers.get("Content-Type", ""):
        etree.fromstring(body, parser=PARSER)  # well-formed

    assert list(env.workdir.glob("pywps_process_*")) == [], "a work directory was left behind"
    if status >= 400:
        assert [p for p in env.outputs.iterdir() if not p.name.startswith(".")] == [], "a refused request left outputs"
    db = env.root / "wps.sqlite"
    if db.exists():
        with sqlite3.connect(db) as connection:
            tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in [t for t in tables if t == f"{env.config.prefix or 'pywps_'}requests"]:
                active = connection.execute(f"SELECT count(*) FROM {table} WHERE status IN (?, ?)",
                                            (int(RequestStatus.ACCEPTED), int(RequestStatus.STARTED))).fetchone()[0]
                assert active == 0, "a request row was left accepted or started"
