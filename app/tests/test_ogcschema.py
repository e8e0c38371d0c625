"""The OGC API - Processes response schemas (tests/schemas/ogcapi-processes) and the ogcschema helper."""

from __future__ import annotations

import copy

import pytest
from jsonschema import Draft202012Validator, ValidationError
from ogcschema import SCHEMAS, errors, validate

BASE = "https://pywps-gridengine.invalid/schemas/ogcapi-processes/"
REL = "http://www.opengis.net/def/rel/ogc/1.0/"
SELF = {"href": "https://wps.test/ogcapi/jobs?f=json", "rel": "self", "type": "application/json"}

LANDING = {
    "title": "pywps-gridengine",
    "links": [
        {"href": "https://wps.test/ogcapi/", "rel": "self", "type": "application/json", "title": "this document"},
        {"href": "https://wps.test/ogcapi/api", "rel": "service-desc", "type": "application/vnd.oai.openapi+json"},
        {"href": "https://wps.test/ogcapi/conformance", "rel": REL + "conformance"},
        {"href": "https://wps.test/ogcapi/processes", "rel": REL + "processes", "hreflang": "en"},
    ],
}
SUMMARY = {
    "id": "sleep",
    "version": "1.0.0",
    "title": "Sleep",
    "keywords": ["test"],
    "jobControlOptions": ["async-execute", "sync-execute", "dismiss"],
    "outputTransmission": ["value", "reference"],
    "links": [{"href": "https://wps.test/ogcapi/processes/sleep", "rel": "self"}],
}
PROCESS = {
    **SUMMARY,
    "inputs": {
        "seconds": {"title": "Seconds", "schema": {"type": "number", "minimum": 0}},
        "tags": {"schema": {"type": "string"}, "minOccurs": 0, "maxOccurs": "unbounded"},
        "pair": {"schema": True, "minOccurs": 2, "maxOccurs": 2},
    },
    "outputs": {"slept": {"description": "seconds slept", "schema": {"type": "number"}}},
}
STATUS = {
    "jobID": "5b0ff3a6-60a3-11f0-9c1a-0242ac120002",
    "processID": "sleep",
    "type": "process",
    "status": "running",
    "message": "started on node1",
    "created": "2025-07-14T10:00:00Z",
    "started": "2025-07-14T10:00:02.5+02:00",
    "updated": "2025-07-14T10:01:00z",
    "progress": 40,
    "links": [SELF],
    "usage": {"cpu_seconds": 12.5},
}
EXAMPLES = {
    "link": {"href": "/jobs/1"},
    "landingPage": LANDING,
    "confClasses": {"conformsTo": ["http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core"]},
    "processSummary": SUMMARY,
    "processList": {"processes": [SUMMARY, {"id": "echo", "version": "2"}], "links": [SELF]},
    "process": PROCESS,
    "statusInfo": STATUS,
    "jobList": {"jobs": [STATUS, {**STATUS, "status": "successful", "progress": 100}], "links": [SELF]},
    "results": {
        "slept": 3.5,
        "name": "plain string",
        "flags": [True, False],
        "geometry": {"type": "Point", "coordinates": [7.1, 50.7]},
        "report": {"value": "PGEvPg==", "mediaType": "application/xml", "encoding": "base64"},
        "data": {"href": "https://wps.test/outputs/1/data.nc", "type": "application/x-netcdf"},
    },
    "exception": {
        "type": "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/no-such-job",
        "title": "No such job",
        "status": 404,
        "detail": "job 42 does not exist",
        "instance": "/jobs/42",
        "traceback": None,
    },
}


def changed(document: dict, **members: object) -> dict:
    """A deep copy of ``document`` with ``members`` set (a value of ``...`` removes the member)."""
    result = copy.deepcopy(document)
    for key, value in members.items():
        result.pop(key) if value is ... else result.__setitem__(key, value)
    return result


INVALID = [
    ("statusInfo", changed(STATUS, status="running2")),
    ("statusInfo", changed(STATUS, jobID=...)),
    ("statusInfo", changed(STATUS, type="job")),
    ("statusInfo", changed(STATUS, progress=101)),
    ("statusInfo", changed(STATUS, created="yesterday")),
    ("statusInfo", changed(STATUS, finished="2025-02-30T10:00:00Z")),
    ("jobList", {"jobs": [changed(STATUS, processID=...)], "links": [SELF]}),
    ("jobList", {"jobs": [STATUS]}),
    ("exception", {"title": "No such job", "status": 404}),
    ("exception", changed(EXAMPLES["exception"], status=99)),
    ("landingPage", {"links": [link for link in LANDING["links"] if not link["rel"].endswith("/conformance")]}),
    ("processSummary", changed(SUMMARY, jobControlOptions=["cancel"])),
    ("processSummary", changed(SUMMARY, version=...)),
    ("process", changed(PROCESS, inputs={"x": {"minOccurs": 1}})),
    ("process", changed(PROCESS, inputs={"x": {"schema": {}, "maxOccurs": 0}})),
    ("confClasses", {"conformsTo": ["not a uri"]}),
    ("results", {"data": {"href": 5}}),
    ("link", {"rel": "self"}),
]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schema_is_valid_and_described(name: str) -> None:
    schema = SCHEMAS[name]
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == f"{BASE}{name}.json"
    assert "OGC 18-062r2" in schema["description"]


def test_every_schema_has_an_example() -> None:
    assert sorted(EXAMPLES) == sorted(SCHEMAS)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_valid_example(name: str) -> None:
    assert errors(name, EXAMPLES[name]) == []
    validate(name + ".json", EXAMPLES[name])


@pytest.mark.parametrize(("name", "instance"), INVALID, ids=[f"{n}-{i}" for i, (n, _) in enumerate(INVALID)])
def test_invalid_example(name: str, instance: object) -> None:
    assert errors(name, instance)
    with pytest.raises(ValidationError):
        validate(name, instance)
