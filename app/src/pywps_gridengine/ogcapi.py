"""OGC API – Processes – Part 1: Core 1.0 (OGC 18-062r2), over the same processes and jobs as the WPS.

Served by the app itself (see the app README for why not pygeoapi), under
one prefix nginx passes here (``/ogcapi`` by default). Routing is werkzeug's
(``werkzeug.routing.Map``: PyWPS's own dependency); the resources:

* ``/`` landing page, ``/conformance``, ``/api`` (OpenAPI 3.0 document);
* ``/processes`` and ``/processes/{id}``: generated from the PyWPS
  ``Process`` objects the WPS serves, so no process is declared twice;
* ``POST /processes/{id}/execution``: the body (``inputs``, ``outputs``,
  ``response``) is turned into a WPS 1.0 Execute document and run through
  the WPS stack itself, front door and admission included: the same checks,
  limits and Grid Engine submission, and the same job row. ``Prefer:
  respond-async`` runs it asynchronously (201, ``Location`` of the job);
* ``/jobs`` (the job list, with ``type``, ``processID``, ``status``,
  ``datetime``, ``limit`` and keyset paging links), ``/jobs/{id}``,
  ``DELETE /jobs/{id}`` (dismiss: stops the Grid Engine job),
  ``/jobs/{id}/results`` and ``/jobs/{id}/log`` (the tail of the job's own
  stdout and stderr), all from :mod:`.jobcontrol`.

Every error is an RFC 7807 problem document (``application/problem+json``)
with the standard's exception type where it defines one.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from lxml import etree
from lxml.builder import ElementMaker
from pywps.inout.inputs import ComplexInput, LiteralInput
from pywps.inout.literaltypes import AnyValue
from pywps.inout.outputs import ComplexOutput
from pywps.validator.allowed_value import ALLOWEDVALUETYPE
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from . import frontdoor
from .jobcontrol import (
    Caller,
    JobControl,
    JobError,
    JobFinished,
    JobStatus,
    NoIdentity,
    NoSuchJob,
    NotAllowed,
    ResultNotReady,
    caller_of,
)
from .jobs import JobState, PageCursor

CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
CONFORMANCE = [CONF + name for name in ("core", "ogc-process-description", "json", "oas30", "job-list", "dismiss")]
EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
REL = "http://www.opengis.net/def/rel/ogc/1.0/"
JSON = "application/json"
PROBLEM = "application/problem+json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
#: The standard's job statuses (statusCode) of each job state.
STATUS = {JobState.ACCEPTED: "accepted", JobState.STARTED: "running", JobState.SUCCEEDED: "successful",
          JobState.FAILED: "failed", JobState.DISMISSED: "dismissed"}
STATE_OF = {word: state for state, word in STATUS.items()}
MAX_LIMIT = 10_000
WPS1 = "http://www.opengis.net/wps/1.0.0"
OWS1 = "http://www.opengis.net/ows/1.1"
XLINK = "http://www.w3.org/1999/xlink"
#: JSON Schema of each WPS literal data type (OGC 18-062r2 describes inputs with JSON Schema).
SCHEMAS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"}, "integer": {"type": "integer"},
    "positiveInteger": {"type": "integer", "minimum": 1}, "nonNegativeInteger": {"type": "integer", "minimum": 0},
    "float": {"type": "number"}, "angle": {"type": "number"}, "scale": {"type": "number"},
    "boolean": {"type": "boolean"}, "date": {"type": "string", "format": "date"},
    "dateTime": {"type": "string", "format": "date-time"}, "time": {"type": "string", "format": "time"},
    "anyURI": {"type": "string", "format": "uri"},
}


class Problem(Exception):
    """An RFC 7807 problem: HTTP status, type, title, detail (and extra members)."""

    def __init__(self, status: int, title: str, detail: str, type_: str = "about:blank",
                 headers: Iterable[tuple[str, str]] = (), **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.type = status, title, detail, type_
        self.headers = list(headers)
        self.extra = extra

    def response(self) -> Response:
        body = {"type": self.type, "title": self.title, "status": self.status,
                "detail": frontdoor.shown(self.detail, 1000), **self.extra}
        return Response(json.dumps(body), status=self.status, headers=self.headers, content_type=PROBLEM)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self.response()(environ, start_response)


def bad_request(detail: str, **extra: Any) -> Problem:
    return Problem(400, "Bad Request", detail, **extra)


def problem_of(error: JobError) -> Problem:
    if isinstance(error, NoSuchJob):
        return Problem(404, "No such job", error.text, EXC + "no-such-job")
    if isinstance(error, ResultNotReady):
        return Problem(404, "Result not ready", error.text, EXC + "result-not-ready")
    if isinstance(error, JobFinished):
        extra = {"jobID": error.job.uuid, "jobStatus": STATUS[JobState(error.job.state)]} if error.job else {}
        return Problem(409, "Job already finished", error.text, **extra)
    if isinstance(error, NoIdentity):
        return Problem(401, "Unauthorized", error.text)
    if isinstance(error, NotAllowed):
        return Problem(403, "Forbidden", error.text)
    return bad_request(error.text)


def iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.replace(tzinfo=dt.UTC).isoformat().replace("+00:00", "Z")


class OgcApi:
    """The WSGI application of the OGC API (mounted under ``prefix``), over ``wps`` (the WPS stack)."""

    def __init__(self, wps: Callable[..., Iterable[bytes]], processes: Mapping[str, Any], control: JobControl,
                 config: Any, prefix: str = "/ogcapi") -> None:
        self.wps = wps
        self.processes = processes
        self.control = control
        self.config = config
        self.prefix = prefix.rstrip("/")
        self.base = (config.jobs.ogcapi_url or _default_url(config.url, self.prefix)).rstrip("/")
        self.url_map = Map([
            Rule("/", endpoint="landing", methods=["GET"]),
            Rule("/conformance", endpoint="conformance", methods=["GET"]),
            Rule("/api", endpoint="openapi", methods=["GET"]),
            Rule("/processes", endpoint="process_list", methods=["GET"]),
            Rule("/processes/<process_id>", endpoint="process", methods=["GET"]),
            Rule("/processes/<process_id>/execution", endpoint="execute", methods=["POST"]),
            Rule("/jobs", endpoint="jobs", methods=["GET"]),
            Rule("/jobs/<job_id>", endpoint="job", methods=["GET"]),
            Rule("/jobs/<job_id>", endpoint="dismiss", methods=["DELETE"]),
            Rule("/jobs/<job_id>/results", endpoint="results", methods=["GET"]),
            Rule("/jobs/<job_id>/log", endpoint="log", methods=["GET"]),
        ], strict_slashes=False, merge_slashes=False)

    def handles(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        path = environ.get("PATH_INFO", "")[len(self.prefix):] or "/"
        adapter = self.url_map.bind("localhost", path_info=path, url_scheme="http")
        try:
            endpoint, args = adapter.match(method=request.method)
            response = getattr(self, endpoint)(request, caller_of(environ, self.control.access), **args)
        except Problem as problem:
            response = problem.response()
        except JobError as error:
            response = problem_of(error).response()
        except MethodNotAllowed as e:
            response = Problem(405, "Method Not Allowed", f"{request.method} is not allowed here",
                               headers=[("Allow", ", ".join(sorted(e.valid_methods or [])))]).response()
        except NotFound:
            response = Problem(404, "Not Found", "no such resource in this OGC API").response()
        except HTTPException as e:  # werkzeug's request parsing (a redirect for a trailing slash is avoided)
            response = Problem(e.code or 400, e.name, e.description or e.name).response()
        return response(environ, start_response)

    # -- links and documents ----------------------------------------------------------------

    def url(self, path: str = "") -> str:
        return self.base + path

    def link(self, path: str, rel: str, title: str, type_: str = JSON) -> dict[str, str]:
        return {"href": self.url(path), "rel": rel, "type": type_, "title": title}

    @staticmethod
    def json(body: Any, status: int = 200, headers: Iterable[tuple[str, str]] = ()) -> Response:
        return Response(json.dumps(body), status=status, headers=[("Cache-Control", "no-store"), *headers],
                        content_type=JSON)

    def landing(self, request: Request, caller: Caller) -> Response:
        title = "pywps-gridengine"
        return self.json({
            "title": title,
            "description": "OGC API – Processes over the same processes and Grid Engine jobs as the WPS at "
                           f"{self.config.url}",
            "links": [
                self.link("/", "self", "This document"),
                self.link("/api", "service-desc", "The API definition (OpenAPI 3.0)", OPENAPI),
                self.link("/conformance", REL + "conformance", "Conformance classes"),
                self.link("/processes", REL + "processes", "The processes"),
                self.link("/jobs", REL + "job-list", "The jobs"),
            ]})

    def conformance(self, request: Request, caller: Caller) -> Response:
        return self.json({"conformsTo": CONFORMANCE})

    def openapi(self, request: Request, caller: Caller) -> Response:
        return Response(json.dumps(openapi_document(self.base, list(self.processes))), content_type=OPENAPI)

    # -- processes ---------------------------------------------------------------------------

    def get_process(self, process_id: str) -> Any:
        process = self.processes.get(process_id)
        if process is None:
            raise Problem(404, "No such process", f"no process {frontdoor.shown(process_id)!r}",
                          EXC + "no-such-process")
        return process

    def summary(self, process: Any) -> dict[str, Any]:
        options = []
        if getattr(process, "synchronous", True):
            options.append("sync-execute")
        if process.store_supported and process.status_supported:
            options += ["async-execute", "dismiss"]
        return {
            "id": process.identifier, "title": process.title, "description": process.abstract or "",
            "version": str(process.version or "1.0.0"), "keywords": [str(k) for k in process.keywords or []],
            "jobControlOptions": options, "outputTransmission": ["value", "reference"],
            "links": [self.link(f"/processes/{process.identifier}", "self", "The process description"),
                      self.link(f"/processes/{process.identifier}/execution", REL + "execute", "Execute it")],
        }

    def process_list(self, request: Request, caller: Caller) -> Response:
        return self.json({"processes": [self.summary(p) for p in self.processes.values()],
                          "links": [self.link("/processes", "self", "The processes")]})

    def process(self, request: Request, caller: Caller, process_id: str) -> Response:
        process = self.get_process(process_id)
        body = self.summary(process)
        body["inputs"] = {inpt.identifier: input_description(inpt) for inpt in process.inputs}
        body["outputs"] = {out.identifier: output_description(out) for out in process.outputs}
        return self.json(body)

    # -- execution ---------------------------------------------------------------------------

    def execute(self, request: Request, caller: Caller, process_id: str) -> Response:
        process = self.get_process(process_id)
        if "json" not in (request.mimetype or ""):
            raise Problem(415, "Unsupported Media Type", "the execute request body must be JSON (application/json)")
        body = read_json(request.get_data())
        preferences = prefer(request.headers.get("Prefer", ""))
        can_async = process.store_supported and process.status_supported
        can_sync = getattr(process, "synchronous", True)
        asynchronous = can_async and ("respond-async" in preferences or not can_sync)
        response_form = body.get("response", "raw")
        if response_form not in ("raw", "document"):
            raise bad_request("response must be raw or document")
        document = execute_document(process, body, asynchronous)
        status, headers, answer = self.call_wps(request.environ, document)
        if status >= 400:
            raise problem_of_report(status, headers, answer)
        applied = [("Preference-Applied", "respond-async")] if asynchronous and "respond-async" in preferences else []
        root = etree.fromstring(answer, parser=frontdoor._SAFE_XML)
        ns = {"wps": WPS1, "ows": OWS1}
        if asynchronous:
            location = root.get("statusLocation") or ""
            job_id = location.rsplit("/", 1)[-1].removesuffix(".xml")
            job_status = self.control.status(job_id, caller)
            return self.json(self.status_info(job_status), 201,
                             [("Location", self.url(f"/jobs/{job_id}")), *applied])
        failed = root.find("wps:Status/wps:ProcessFailed", ns)
        if failed is not None:
            text = " ".join(t.strip() for t in failed.itertext() if t.strip())
            raise Problem(422, "Process failed", text or "the process failed")
        from .jobcontrol import outputs_of

        outputs = outputs_of(answer)
        if response_form == "raw" and len(outputs) == 1:
            return raw_output(outputs[0])
        return self.json(results_of(outputs))

    def call_wps(self, environ: dict[str, Any], document: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Run a WPS Execute document through the WPS stack, as if the client had posted it to ``/wps``."""
        inner = {key: value for key, value in environ.items() if not key.startswith("wsgi.input")}
        # The path of the WPS endpoint: PyWPS reads identifiers out of some paths (/processes/<id>/...).
        inner.update({"REQUEST_METHOD": "POST", "QUERY_STRING": "", "PATH_INFO": "/wps", "SCRIPT_NAME": "", "CONTENT_TYPE": "text/xml; charset=utf-8",
                      "CONTENT_LENGTH": str(len(document)), "wsgi.input": io.BytesIO(document),
                      "HTTP_ACCEPT": "text/xml"})
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            captured["status"], captured["headers"] = int(status.split()[0]), headers
            return lambda data: None

        result = self.wps(inner, start_response)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return captured.get("status", 500), captured.get("headers", []), body

    # -- jobs -------------------------------------------------------------------------------

    def status_info(self, status: JobStatus) -> dict[str, Any]:
        job = status.job
        info: dict[str, Any] = {
            "jobID": job.uuid, "processID": job.identifier, "type": "process", "status": STATUS[status.state],
            "message": job.message or "", "created": iso(job.created_at), "updated": iso(job.updated_at),
        }
        if job.started_at is not None:
            info["started"] = iso(job.started_at)
        if job.finished_at is not None:
            info["finished"] = iso(job.finished_at)
        if status.percent is not None:
            info["progress"] = status.percent
        usage = status.usage()
        if usage:
            info["usage"] = usage
        links = [self.link(f"/jobs/{job.uuid}", "self", "The job's status"),
                 self.link(f"/jobs/{job.uuid}/log", "log", "The tail of the job's own stdout and stderr"),
                 {"href": f"{self.config.outputurl.rstrip('/')}/{job.uuid}.xml", "rel": "alternate",
                  "type": "application/xml", "title": "The WPS 1.0 status document"}]
        if status.state == JobState.SUCCEEDED:
            links.append(self.link(f"/jobs/{job.uuid}/results", REL + "results", "The job's results"))
        info["links"] = links
        return info

    def job(self, request: Request, caller: Caller, job_id: str) -> Response:
        return self.json(self.status_info(self.control.status(job_id, caller)))

    def dismiss(self, request: Request, caller: Caller, job_id: str) -> Response:
        return self.json(self.status_info(self.control.dismiss(job_id, caller)))

    def results(self, request: Request, caller: Caller, job_id: str) -> Response:
        status = self.control.status(job_id, caller)
        job = status.job
        if status.state == JobState.FAILED:
            raise Problem(422, "Job failed", job.message or "the job failed", jobID=job.uuid, jobStatus="failed")
        if status.state == JobState.DISMISSED:
            raise Problem(410, "Job dismissed", job.message or "the job was dismissed", jobID=job.uuid)
        return self.json(results_of(self.control.outputs(job)))

    def log(self, request: Request, caller: Caller, job_id: str) -> Response:
        return self.json(self.control.log_tail(job_id, caller))

    def jobs(self, request: Request, caller: Caller) -> Response:
        args = request.args
        known = {"type", "processID", "processid", "status", "datetime", "limit", "page", "minDuration",
                 "maxDuration", "f"}
        unknown = sorted(set(args) - known)
        if unknown:
            raise bad_request(f"unknown parameter {frontdoor.shown(unknown[0])!r}")
        for name in ("minDuration", "maxDuration"):
            if name in args:
                raise Problem(400, "Bad Request", f"{name} is not supported by this server")
        types = _multi(args, "type")
        processes = _multi(args, "processID") + _multi(args, "processid")
        states = []
        for word in _multi(args, "status"):
            if word not in STATE_OF:
                raise bad_request(f"unknown status {frontdoor.shown(word)!r}; one of {', '.join(STATE_OF)}")
            states.append(STATE_OF[word])
        limit_text = args.get("limit", "10")
        if not re.fullmatch(r"\d{1,6}", limit_text) or not 1 <= int(limit_text) <= MAX_LIMIT:
            raise bad_request(f"limit must be a whole number from 1 to {MAX_LIMIT}")
        limit = int(limit_text)
        since, until = parse_datetime(args.get("datetime"))
        after = decode_page(args.get("page"))
        if types and "process" not in types:
            page: list[JobStatus] = []
            cursor = None
        else:
            page, cursor = self.control.list(caller, states=states, processes=processes, since=since, until=until,
                                             limit=limit, after=after)
        query = [(key, value) for key, value in args.items(multi=True) if key != "page"]
        links = [{"href": self.url("/jobs") + (f"?{urlencode(query)}" if query else ""), "rel": "self",
                  "type": JSON, "title": "This page of the job list"}]
        if cursor is not None:
            links.append({"href": self.url("/jobs") + "?" + urlencode([*query, ("page", encode_page(cursor))]),
                          "rel": "next", "type": JSON, "title": "The next page"})
        return self.json({"jobs": [self.status_info(s) for s in page], "links": links})


# -- reading requests --------------------------------------------------------------------------------


def _multi(args: Any, name: str) -> list[str]:
    """A parameter's values: repeated, or comma-separated (the standard's form: explode=false)."""
    return [part.strip() for value in args.getlist(name) for part in value.split(",") if part.strip()]


def read_json(data: bytes) -> dict[str, Any]:
    try:
        body = frontdoor.strict_json(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise bad_request(f"the request body is not JSON: {frontdoor.shown(str(e), 200)}") from None
    if not isinstance(body, dict):
        raise bad_request("the execute request must be a JSON object")
    unknown = sorted(set(body) - {"inputs", "outputs", "response", "subscriber"})
    if unknown:
        raise bad_request(f"unknown member {frontdoor.shown(unknown[0])!r} of the execute request")
    if "subscriber" in body:
        raise bad_request("callbacks (subscriber) are not supported by this server")
    for member in ("inputs", "outputs"):
        if member in body and not isinstance(body[member], dict):
            raise bad_request(f"{member} must be an object keyed by identifier")
    return body


def prefer(header: str) -> set[str]:
    """The preference tokens of a Prefer header (RFC 7240); unknown ones are ignored, as the RFC says."""
    return {part.split("=", 1)[0].strip().lower() for item in header.split(",") for part in item.split(";")[:1]
            if part.strip()}


def parse_datetime(text: str | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The ``datetime`` parameter: an instant, or an interval ``start/end`` with ``..`` open ends (naive UTC)."""
    if not text:
        return None, None

    def instant(value: str) -> dt.datetime | None:
        if value in ("..", ""):
            return None
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise bad_request(f"datetime: {frontdoor.shown(value)!r} is not an RFC 3339 date-time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC).replace(tzinfo=None)

    if "/" in text:
        start, _, end = text.partition("/")
        since, until = instant(start), instant(end)
        if since is not None and until is not None and since > until:
            raise bad_request("datetime: the interval ends before it starts")
        return since, until
    moment = instant(text)
    return moment, moment


def encode_page(cursor: PageCursor) -> str:
    text = f"{cursor.created_at.isoformat()}|{cursor.uuid}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_page(token: str | None) -> PageCursor | None:
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        created, uuid = text.split("|", 1)
        if not re.fullmatch(r"[0-9a-f-]{36}", uuid):
            raise ValueError(uuid)
        return PageCursor(dt.datetime.fromisoformat(created), uuid)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("page is not a page of this job list (use the next link as given)") from None


# -- the execute request as a WPS 1.0 Execute document ---------------------------------------------


def execute_document(process: Any, body: Mapping[str, Any], asynchronous: bool) -> bytes:
    """The WPS 1.0 Execute document of an OGC API execute request (inputs, outputs) for ``process``.

    Text XML cannot carry (control characters) is refused here, as the
    WPS's front door refuses it in a WPS request.
    """
    for text in _strings(body):
        if frontdoor._NOT_XML.search(text):
            raise bad_request("the execute request contains a control character, which no input may hold")
    wps = ElementMaker(namespace=WPS1, nsmap={"wps": WPS1, "ows": OWS1, "xlink": XLINK})
    ows = ElementMaker(namespace=OWS1, nsmap={"ows": OWS1})
    declared_inputs = {inpt.identifier: inpt for inpt in process.inputs}
    inputs = wps.DataInputs()
    for identifier, given in (body.get("inputs") or {}).items():
        declared = declared_inputs.get(identifier)
        if declared is None:
            raise bad_request(f"process {process.identifier} has no input {frontdoor.shown(identifier)!r}")
        values = given if isinstance(given, list) else [given]
        for value in values:
            inputs.append(wps.Input(ows.Identifier(identifier), input_value(wps, declared, value)))
    declared_outputs = {out.identifier: out for out in process.outputs}
    requested = body.get("outputs") or {}
    document = wps.ResponseDocument(storeExecuteResponse="true" if asynchronous else "false",
                                    status="true" if asynchronous else "false")
    for identifier, choice in requested.items():
        out = declared_outputs.get(identifier)
        if out is None:
            raise bad_request(f"process {process.identifier} has no output {frontdoor.shown(identifier)!r}")
        if not isinstance(choice, dict):
            raise bad_request(f"output {frontdoor.shown(identifier)!r}: its choices must be an object")
        element = wps.Output(ows.Identifier(identifier))
        mode = choice.get("transmissionMode", "value")
        if mode not in ("value", "reference"):
            raise bad_request(f"output {identifier}: transmissionMode must be value or reference")
        if mode == "reference":
            element.set("asReference", "true")
        media = (choice.get("format") or {}).get("mediaType") if isinstance(choice.get("format"), dict) else None
        if media is not None:
            if not isinstance(media, str):
                raise bad_request(f"output {identifier}: format.mediaType must be a string")
            element.set("mimeType", media)
        document.append(element)
    if not len(document):
        for out in process.outputs:
            element = wps.Output(ows.Identifier(out.identifier))
            if isinstance(out, ComplexOutput) and getattr(out, "as_reference", False):
                element.set("asReference", "true")
            document.append(element)
    root = wps.Execute(ows.Identifier(process.identifier), service="WPS", version="1.0.0")
    if len(inputs):
        root.append(inputs)
    root.append(wps.ResponseForm(document))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _strings(value: Any) -> Iterable[str]:
    """Every string in a JSON value, keys included (iteratively: the nesting depth is the parser's limit)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def input_value(wps: Any, declared: Any, value: Any) -> Any:
    """One input value of the execute request as WPS 1.0 Data or Reference."""
    identifier = declared.identifier
    if isinstance(value, dict) and "href" in value:
        if not isinstance(value["href"], str):
            raise bad_request(f"input {identifier}: href must be a string")
        reference = wps.Reference()
        reference.set(f"{{{XLINK}}}href", value["href"])
        if isinstance(value.get("type"), str):
            reference.set("mimeType", value["type"])
        return reference
    if isinstance(declared, LiteralInput):
        if isinstance(value, dict):
            if "value" not in value:
                raise bad_request(f"input {identifier}: a literal value is a string, a number, a boolean or "
                                  "{\"value\": ...}")
            uom = value.get("uom")
            value = value["value"]
        else:
            uom = None
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float | str):
            text = str(value)
        else:
            raise bad_request(f"input {identifier} is a literal ({declared.data_type}): not an object or array")
        literal = wps.LiteralData(text)
        if uom is not None:
            if not isinstance(uom, str):
                raise bad_request(f"input {identifier}: uom must be a string")
            literal.set("uom", uom)
        return wps.Data(literal)
    if isinstance(declared, ComplexInput):
        media = None
        if isinstance(value, dict) and "value" in value:
            media = value.get("mediaType")
            encoding = value.get("encoding")
            value = value["value"]
        else:
            encoding = None
        if media is None:
            media = declared.data_format.mime_type if declared.data_format else None
        if media is not None and not isinstance(media, str):
            raise bad_request(f"input {identifier}: mediaType must be a string")
        text = value if isinstance(value, str) else json.dumps(value)
        data = wps.ComplexData(text)
        if media:
            data.set("mimeType", media)
        if isinstance(encoding, str) and encoding:
            data.set("encoding", encoding)
        return wps.Data(data)
    raise bad_request(f"input {identifier}: bounding boxes are not supported")


def problem_of_report(status: int, headers: list[tuple[str, str]], body: bytes) -> Problem:
    """The problem document of the WPS stack's ExceptionReport (its status, code, text and locator kept)."""
    code, text, locator = "NoApplicableCode", "the request was refused", None
    try:
        root = etree.fromstring(body, parser=frontdoor._SAFE_XML)
        exception = root.find(f"{{{OWS1}}}Exception")
        if exception is not None:
            code = exception.get("exceptionCode") or code
            locator = exception.get("locator")
            text = (exception.findtext(f"{{{OWS1}}}ExceptionText") or text).strip()
    except (etree.XMLSyntaxError, ValueError):
        pass
    kept = [(name, value) for name, value in headers if name.lower() == "retry-after"]
    titles = {400: "Bad Request", 413: "Content Too Large", 501: "Not Implemented", 503: "Service Unavailable"}
    extra = {"code": code, **({"locator": locator} if locator else {})}
    return Problem(status, titles.get(status, "Error"), text, headers=kept, **extra)


# -- answers --------------------------------------------------------------------------------------------


def results_of(outputs: Iterable[Any]) -> dict[str, Any]:
    """The results document (OGC 18-062r2, 7.13): each output by value (qualified) or by reference."""
    results: dict[str, Any] = {}
    for output in outputs:
        if output.href is not None:
            results[output.identifier] = {"href": output.href, **({"type": output.mime_type}
                                                                   if output.mime_type else {})}
        elif output.literal:
            results[output.identifier] = literal_value(output.value or "", output.data_type)
        else:
            value: Any = output.value or ""
            if output.mime_type == JSON:
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            results[output.identifier] = {"value": value, "mediaType": output.mime_type or "text/plain",
                                          **({"encoding": output.encoding} if output.encoding else {})}
    return results


def literal_value(text: str, data_type: str | None) -> Any:
    kind = (data_type or "string").rsplit(":", 1)[-1].rsplit("#", 1)[-1]
    try:
        if kind in ("integer", "positiveInteger", "nonNegativeInteger"):
            return int(text)
        if kind in ("float", "double", "angle", "scale"):
            return float(text)
        if kind == "boolean":
            return text.strip().lower() in ("true", "1")
    except ValueError:
        pass
    return text


def raw_output(output: Any) -> Response:
    if output.href is not None:
        return Response(status=204, headers=[("Link", f'<{output.href}>; rel="{REL}result"')])
    media = output.mime_type or "text/plain"
    data = output.value or ""
    if output.encoding == "base64":
        return Response(base64.b64decode(data), content_type=media)
    return Response(data, content_type=f"{media}; charset=utf-8" if media.startswith("text/") else media)


def input_description(inpt: Any) -> dict[str, Any]:
    description: dict[str, Any] = {"title": inpt.title or inpt.identifier, "description": inpt.abstract or "",
                                   "minOccurs": int(inpt.min_occurs),
                                   "maxOccurs": int(inpt.max_occurs) if inpt.max_occurs else "unbounded"}
    if isinstance(inpt, LiteralInput):
        schema = dict(SCHEMAS.get(inpt.data_type, {"type": "string"}))
        for rule in inpt.allowed_values or []:
            if isinstance(rule, AnyValue):
                continue
            if rule.allowed_type == ALLOWEDVALUETYPE.RANGE:
                if rule.minval is not None:
                    schema["minimum"] = rule.minval
                if rule.maxval is not None:
                    schema["maximum"] = rule.maxval
            elif rule.allowed_type == ALLOWEDVALUETYPE.VALUE:
                schema.setdefault("enum", []).append(rule.value)
        if inpt.data is not None:
            schema["default"] = literal_value(str(inpt.data), inpt.data_type)
        description["schema"] = schema
    else:
        formats = getattr(inpt, "supported_formats", None) or []
        description["schema"] = {"oneOf": [{"type": "string", "contentMediaType": f.mime_type} for f in formats]
                                 or [{"type": "string"}]}
    return description


def output_description(out: Any) -> dict[str, Any]:
    description: dict[str, Any] = {"title": out.title or out.identifier, "description": out.abstract or ""}
    if isinstance(out, ComplexOutput):
        description["schema"] = {"oneOf": [{"type": "string", "contentMediaType": f.mime_type}
                                           for f in out.supported_formats] or [{"type": "string"}]}
    else:
        description["schema"] = dict(SCHEMAS.get(getattr(out, "data_type", "string"), {"type": "string"}))
    return description


def openapi_document(base: str, process_ids: list[str]) -> dict[str, Any]:
    """The OpenAPI 3.0 document of this API (the paths it serves, their parameters and answers)."""
    def answer(description: str, media: str = JSON) -> dict[str, Any]:
        return {"description": description, "content": {media: {"schema": {"type": "object"}}}}

    problem = {"description": "An exception (RFC 7807)", "content": {PROBLEM: {"schema": {"type": "object"}}}}
    job_id = {"name": "jobId", "in": "path", "required": True, "schema": {"type": "string"}}
    process_id = {"name": "processId", "in": "path", "required": True,
                  "schema": {"type": "string", "enum": process_ids}}
    listed = [{"name": name, "in": "query", "required": False, "style": "form", "explode": False,
               "schema": {"type": "array", "items": {"type": "string"}}} for name in ("type", "processID", "status")]
    listed += [{"name": "datetime", "in": "query", "required": False, "schema": {"type": "string"}},
               {"name": "limit", "in": "query", "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 10}},
               {"name": "page", "in": "query", "required": False, "schema": {"type": "string"}}]
    return {
        "openapi": "3.0.3",
        "info": {"title": "pywps-gridengine OGC API – Processes", "version": "1.0.0"},
        "servers": [{"url": base}],
        "paths": {
            "/": {"get": {"summary": "Landing page", "responses": {"200": answer("The landing page")}}},
            "/conformance": {"get": {"summary": "Conformance classes",
                                     "responses": {"200": answer("The conformance classes")}}},
            "/api": {"get": {"summary": "This document", "responses": {"200": answer("OpenAPI", OPENAPI)}}},
            "/processes": {"get": {"summary": "The processes", "responses": {"200": answer("The process list")}}},
            "/processes/{processId}": {"get": {"summary": "A process description", "parameters": [process_id],
                                               "responses": {"200": answer("The process"), "404": problem}}},
            "/processes/{processId}/execution": {"post": {
                "summary": "Execute a process", "parameters": [
                    process_id, {"name": "Prefer", "in": "header", "required": False, "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {JSON: {"schema": {"type": "object"}}}},
                "responses": {"200": answer("The results (synchronous)"),
                              "201": answer("The job's status (asynchronous)"), "400": problem, "404": problem,
                              "503": problem}}},
            "/jobs": {"get": {"summary": "The job list", "parameters": listed,
                              "responses": {"200": answer("A page of the job list"), "400": problem, "403": problem}}},
            "/jobs/{jobId}": {
                "get": {"summary": "A job's status", "parameters": [job_id],
                        "responses": {"200": answer("The status"), "404": problem}},
                "delete": {"summary": "Dismiss a job: its Grid Engine job is deleted", "parameters": [job_id],
                           "responses": {"200": answer("The status (dismissed)"), "404": problem, "409": problem}}},
            "/jobs/{jobId}/results": {"get": {"summary": "A job's results", "parameters": [job_id],
                                              "responses": {"200": answer("The results"), "404": problem}}},
            "/jobs/{jobId}/log": {"get": {"summary": "The tail of the job's stdout and stderr",
                                          "parameters": [job_id],
                                          "responses": {"200": answer("The log tail"), "404": problem}}},
        },
    }


def _default_url(wps_url: str, prefix: str) -> str:
    """The OGC API's public address beside the WPS's: ``http://host/wps`` -> ``http://host/ogcapi``."""
    match = re.match(r"^([a-z]+://[^/]+)", wps_url or "")
    return (match.group(1) if match else "") + prefix


__all__ = ["CONFORMANCE", "OgcApi", "Problem"]
