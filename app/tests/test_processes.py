"""The processes, executed through the WSGI app (local processing mode, no cluster)."""

from __future__ import annotations

import json

import pytest
from pywps.tests import assert_process_exception, assert_response_success, assert_wps_version
from wpstest import NS, literal_output, output_element, status_of, status_text, xml

IDENTIFIERS = ["hello", "sleep", "wordcount", "literals", "textfile", "fail", "allocate"]


def execute(client, identifier: str, datainputs: str = "", **params: str):
    query = {"service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": identifier}
    if datainputs:
        query["datainputs"] = datainputs
    query.update(params)
    return client.get("/wps", query_string=query)


def test_get_capabilities_lists_every_process(client):
    resp = client.get("/wps", query_string={"service": "WPS", "request": "GetCapabilities"})
    assert resp.status_code == 200
    assert_wps_version(resp)
    assert [e.text for e in resp.xpath("//wps:Process/ows:Identifier")] == IDENTIFIERS


def test_describe_process_declares_store_and_status(client):
    resp = client.get("/wps", query_string={"service": "WPS", "request": "DescribeProcess", "version": "1.0.0",
                                            "identifier": ",".join(IDENTIFIERS)})
    assert resp.status_code == 200
    descriptions = xml(resp.data).findall("ProcessDescription")
    assert [d.findtext("ows:Identifier", namespaces=NS) for d in descriptions] == IDENTIFIERS
    for d in descriptions:
        assert d.get("storeSupported") == "true"
        assert d.get("statusSupported") == "true"


def test_demo_inputs_are_unchanged(client):
    resp = client.get("/wps", query_string={"service": "WPS", "request": "DescribeProcess", "version": "1.0.0",
                                            "identifier": "hello,sleep"})
    inputs = {d.findtext("ows:Identifier", namespaces=NS): [i.findtext("ows:Identifier", namespaces=NS)
                                                            for i in d.iterfind("DataInputs/Input")]
              for d in xml(resp.data).findall("ProcessDescription")}
    assert inputs == {"hello": ["name"], "sleep": ["delay"]}


def test_hello_friday(client):
    resp = execute(client, "hello", "name=Friday")
    assert_response_success(resp)
    assert resp.xpath_text("//wps:Output[ows:Identifier='output']//wps:LiteralData") == "Hello Friday"


def test_sleep_reports_progress_and_finishes():
    from pywps_gridengine.processes.sleep import run_sleep

    reports: list[tuple[str, int]] = []
    slept: list[float] = []
    run_sleep(0.25, lambda msg, pct: reports.append((msg, pct)), sleep=slept.append)
    assert slept == [0.25] * 5
    percents = [pct for _, pct in reports]
    assert percents == sorted(percents) and percents[0] == 0 and percents[-1] < 100
    assert len(set(percents)) == len(percents) == 6


def test_sleep_sync_with_zero_delay(client):
    resp = execute(client, "sleep", "delay=0")
    assert_response_success(resp)
    doc = resp.xml
    assert literal_output(doc, "sleep_output") == "done sleeping"


def test_sleep_rejects_delay_out_of_range(client):
    resp = execute(client, "sleep", "delay=-5")
    assert resp.status_code == 400
    assert b"ExceptionReport" in resp.data


WORDCOUNT_POST = b"""<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0"
    xmlns:ows="http://www.opengis.net/ows/1.1">
  <ows:Identifier>wordcount</ows:Identifier>
  <wps:DataInputs>
    <wps:Input>
      <ows:Identifier>text</ows:Identifier>
      <wps:Data><wps:ComplexData mimeType="text/plain">the cat and the hat
The end</wps:ComplexData></wps:Data>
    </wps:Input>
    <wps:Input>
      <ows:Identifier>top</ows:Identifier>
      <wps:Data><wps:LiteralData>2</wps:LiteralData></wps:Data>
    </wps:Input>
  </wps:DataInputs>
  <wps:ResponseForm>
    <wps:ResponseDocument><wps:Output mimeType="application/json"><ows:Identifier>output</ows:Identifier></wps:Output>
    </wps:ResponseDocument>
  </wps:ResponseForm>
</wps:Execute>"""


def test_wordcount_complex_input_json_output(client):
    resp = client.post("/wps", data=WORDCOUNT_POST, content_type="text/xml")
    assert resp.status_code == 200, resp.data
    doc = xml(resp.data)
    assert status_of(doc) == "ProcessSucceeded", status_text(doc)
    data = output_element(doc, "output").find(".//wps:ComplexData", NS)
    assert data.get("mimeType") == "application/json"
    assert json.loads(data.text) == {"words": 7, "distinct": 5, "lines": 2, "top": [["the", 3], ["and", 1]]}


def test_literals_defaults_are_typed(client):
    doc = xml(execute(client, "literals").data)
    assert status_of(doc) == "ProcessSucceeded", status_text(doc)
    values = json.loads(output_element(doc, "output").find(".//wps:ComplexData", NS).text)
    assert values["string"] == {"value": "banana", "type": "str"}
    assert values["integer"] == {"value": 42, "type": "int"}
    assert values["float"] == {"value": 0.5, "type": "float"}
    assert values["boolean"] == {"value": True, "type": "bool"}
    assert values["positive_integer"]["value"] == 3
    assert values["date"] == {"value": "2024-02-29", "type": "date"}
    assert values["time"]["type"] == "time"
    assert values["datetime"]["type"] == "datetime"
    assert values["uri"]["value"] == "https://example.org/data"
    assert len(values) == 12


def test_literals_given_values(client):
    doc = xml(execute(client, "literals", "string=cherry;integer=-7;boolean=false;angle=180.5;date=2025-12-31").data)
    values = json.loads(output_element(doc, "output").find(".//wps:ComplexData", NS).text)
    assert values["string"]["value"] == "cherry"
    assert values["integer"]["value"] == -7
    assert values["boolean"]["value"] is False
    assert values["angle"]["value"] == 180.5
    assert values["date"]["value"] == "2025-12-31"


@pytest.mark.parametrize("datainputs", ["string=durian", "integer=101", "positive_integer=4", "float=1.5"])
def test_literals_reject_values_not_allowed(client, datainputs):
    resp = execute(client, "literals", datainputs)
    assert_process_exception(resp, code="InvalidParameterValue")


def test_textfile_by_reference(client, make_env):
    resp = execute(client, "textfile", "lines=3", responsedocument="output=@asReference=true")
    doc = xml(resp.data)
    assert status_of(doc) == "ProcessSucceeded", status_text(doc)
    ref = output_element(doc, "output").find("wps:Reference", NS)
    assert ref is not None and ref.get("mimeType") == "text/plain"
    href = ref.get("href")
    assert href.startswith("http://wps.test/wpsoutputs/")
    from pywps import configuration

    path = href.replace("http://wps.test/wpsoutputs", configuration.get_config_value("server", "outputpath"))
    assert open(path).read() == "1 squared is 1\n2 squared is 4\n3 squared is 9\n"


def test_textfile_csv_when_asked(client):
    resp = execute(client, "textfile", "lines=2", responsedocument="output=@asReference=false@mimeType=text/csv")
    doc = xml(resp.data)
    data = output_element(doc, "output").find(".//wps:ComplexData", NS)
    assert data.get("mimeType") == "text/csv"
    assert data.text == "n,square\n1,1\n2,4\n"


def test_fail_reports_its_message(client):
    doc = xml(execute(client, "fail", "message=Nothing to see, move along.").data)
    assert status_of(doc) == "ProcessFailed"
    assert "Nothing to see, move along." in status_text(doc)


# -- bad requests: OGC ExceptionReport, 4xx, no traceback ------------------------------

def assert_exception_report(resp, code: str) -> None:
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.data)
    doc = xml(resp.data)
    assert doc.tag == "{http://www.opengis.net/ows/1.1}ExceptionReport"
    assert doc.find("ows:Exception", NS).get("exceptionCode") == code
    assert b"Traceback" not in resp.data and b'File "' not in resp.data


def test_unknown_identifier(client):
    assert_exception_report(execute(client, "nosuchprocess", "name=x"), "InvalidParameterValue")


def test_unknown_identifier_in_describe(client):
    resp = client.get("/wps", query_string={"service": "WPS", "request": "DescribeProcess", "version": "1.0.0",
                                            "identifier": "nosuchprocess"})
    assert_exception_report(resp, "InvalidParameterValue")


def test_missing_input(client):
    assert_exception_report(execute(client, "hello"), "MissingParameterValue")


def test_wrong_type(client):
    assert_exception_report(execute(client, "sleep", "delay=soon"), "InvalidParameterValue")


def test_malformed_xml_post(client):
    resp = client.post("/wps", data=b"<wps:Execute xmlns:wps='http://www.opengis.net/wps/1.0.0'><oops>",
                       content_type="text/xml")
    assert_exception_report(resp, "NoApplicableCode")


def test_unknown_request(client):
    resp = client.get("/wps", query_string={"service": "WPS", "request": "Dance"})
    assert 400 <= resp.status_code < 500
    assert b"Traceback" not in resp.data


def test_health_ok_and_failing(client, make_env):
    resp = client.get("/health")
    assert resp.status_code == 200
    assert resp.json["status"] == "ok"
    env = make_env(mode="default")
    env.outputs.rmdir()
    resp = client.get("/health")
    assert resp.status_code == 503
    assert resp.json["checks"]["outputpath"].startswith("not writable")


def test_health_in_scheduler_mode_needs_drmaa_library(make_env, monkeypatch, tmp_path):
    from werkzeug.test import Client

    from pywps_gridengine.wsgi import create_service, make_app

    env = make_env(mode="scheduler")
    client = Client(make_app(create_service(env.config), env.config))
    monkeypatch.delenv("DRMAA_LIBRARY_PATH", raising=False)
    resp = client.get("/health")
    assert resp.status_code == 503 and "unset" in resp.json["checks"]["drmaa"]
    lib = tmp_path / "libdrmaa.so.1.0"
    lib.write_bytes(b"")
    monkeypatch.setenv("DRMAA_LIBRARY_PATH", str(lib))
    assert client.get("/health").status_code == 200


def test_gunicorn_entry_point_reads_pywps_cfg(make_env, monkeypatch):
    from werkzeug.test import Client

    from pywps_gridengine import wsgi

    make_env(mode="default")  # sets PYWPS_CFG
    monkeypatch.setattr(wsgi, "_application", None)
    resp = Client(wsgi.application).get("/wps", query_string={"service": "WPS", "request": "Execute",
                                                              "version": "1.0.0", "identifier": "hello",
                                                              "datainputs": "name=Friday"})
    assert literal_output(xml(resp.data), "output") == "Hello Friday"


def test_allocate_within_its_limit(client):
    resp = execute(client, "allocate", "megabytes=8;seconds=0")
    assert_response_success(resp)
    assert literal_output(resp.xml, "output") == "allocated 8 MB for 0 s"
