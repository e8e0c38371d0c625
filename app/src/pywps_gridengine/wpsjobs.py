"""WPS job operations PyWPS 4.8 advertises or lacks: answered from the job table (:mod:`.jobcontrol`).

* WPS 2.0 (OGC 14-065) ``GetStatus``, ``GetResult`` and ``Dismiss``, in KVP
  (``service=WPS&version=2.0.0&request=GetStatus&jobId=…``) and as XML
  POST bodies (``wps:GetStatus`` etc. in the WPS 2.0 namespace): a
  ``wps:StatusInfo`` (Dismiss: status Dismissed) or a ``wps:Result``.
* WPS 1.0 vendor requests, as GeoServer offers them: ``request=Dismiss&jobId=…``
  answers the job's ExecuteResponse (ProcessFailed, "dismissed by the
  client": WPS 1.0 has no dismissed state), and ``request=GetExecutions``
  (``identifier``, ``status``, ``maxFeatures``, ``startIndex``) lists jobs as
  ExecuteResponse elements in a ``wps:GetExecutionsResponse``.

A WSGI layer (:class:`JobOperations`) in front of PyWPS: other requests pass
through untouched. Errors are OWS ExceptionReports (OWS 1.1 for WPS 1.0, OWS
2.0 for WPS 2.0), documents are built with lxml, never by pasting text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from lxml import etree
from lxml.builder import ElementMaker

from . import frontdoor
from .jobcontrol import (
    DISMISSED_REASON,
    Caller,
    JobControl,
    JobError,
    JobFinished,
    JobStatus,
    NoIdentity,
    NoSuchJob,
    NotAllowed,
    Output,
    ResultNotReady,
    caller_of,
)
from .jobs import JobRecord, JobState

WPS1 = "http://www.opengis.net/wps/1.0.0"
WPS2 = "http://www.opengis.net/wps/2.0"
OWS1 = "http://www.opengis.net/ows/1.1"
OWS2 = "http://www.opengis.net/ows/2.0"
XLINK = "http://www.w3.org/1999/xlink"
#: The operations answered here (lower case), and those of them that are WPS 2.0's.
OPERATIONS = ("getstatus", "getresult", "dismiss", "getexecutions")
WPS2_OPERATIONS = ("getstatus", "getresult", "dismiss")
#: WPS 2.0 status words (OGC 14-065, 9.5) of each job state.
WPS2_STATUS = {JobState.ACCEPTED: "Accepted", JobState.STARTED: "Running", JobState.SUCCEEDED: "Succeeded",
               JobState.FAILED: "Failed", JobState.DISMISSED: "Dismissed"}
#: The status filter words of GetExecutions (WPS 1.0's, WPS 2.0's, OGC API's), in lower case.
STATUS_WORDS = {"processaccepted": (JobState.ACCEPTED,), "accepted": (JobState.ACCEPTED,),
                "processstarted": (JobState.STARTED,), "started": (JobState.STARTED,),
                "running": (JobState.STARTED,), "processsucceeded": (JobState.SUCCEEDED,),
                "succeeded": (JobState.SUCCEEDED,), "successful": (JobState.SUCCEEDED,),
                # a dismissed job is ProcessFailed in WPS 1.0
                "processfailed": (JobState.FAILED, JobState.DISMISSED), "failed": (JobState.FAILED,),
                "dismissed": (JobState.DISMISSED,)}
MAX_FEATURES = 1000
MAX_START_INDEX = 100_000


class WpsRefusal(frontdoor.Refusal):
    """A refusal answered in the OWS version of the request's WPS version."""

    def __init__(self, status: int, code: str, text: str, locator: str | None = None, wps2: bool = False) -> None:
        super().__init__(status, code, text, locator)
        self.wps2 = wps2

    def response(self) -> Any:
        if not self.wps2:
            return super().response()
        from werkzeug.wrappers import Response

        ows = ElementMaker(namespace=OWS2, nsmap={"ows": OWS2})
        exception = ows.Exception(ows.ExceptionText(frontdoor.shown(self.text, 1000)), exceptionCode=self.code)
        if self.locator is not None:
            exception.set("locator", frontdoor.shown(self.locator))
        report = ows.ExceptionReport(exception, version="2.0.0")
        report.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        return Response(etree.tostring(report, xml_declaration=True, encoding="UTF-8"), status=self.status,
                        content_type="text/xml; charset=utf-8")


def iso(value: dt.datetime | None) -> str | None:
    """A naive UTC time of the job table as an xs:dateTime in UTC."""
    return None if value is None else value.replace(microsecond=0).isoformat() + "Z"


class JobOperations:
    """WSGI layer: the job operations above, answered here; every other request goes on to ``app``."""

    def __init__(self, app: Callable[..., Iterable[bytes]], control: JobControl, config: Any) -> None:
        self.app = app
        self.control = control
        self.config = config

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            request = self.recognise(environ)
        except frontdoor.Refusal as refusal:
            return refusal(environ, start_response)
        if request is None:
            return self.app(environ, start_response)
        operation, params, wps2 = request
        try:
            response = self.answer(operation, params, wps2, caller_of(environ, self.control.access))
        except frontdoor.Refusal as refusal:
            response = refusal.response()
        except JobError as e:
            response = self.refusal(e, wps2).response()
        return response(environ, start_response)

    # -- reading the request ------------------------------------------------------------------

    def recognise(self, environ: dict[str, Any]) -> tuple[str, dict[str, str], bool] | None:
        """(operation, parameters with lower-case names, WPS 2.0?) of a job operation, None for another request."""
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if method == "GET":
            query = environ.get("QUERY_STRING", "")
            pairs = parse_qsl(query, keep_blank_values=True)
            params = {key.lower(): value for key, value in pairs}
            operation = params.get("request", "").lower()
            if operation not in OPERATIONS:
                return None
            frontdoor.check_kvp(query)  # a parameter twice, control characters: the front door's refusals
            wps2 = operation in WPS2_OPERATIONS and (params.get("version") == "2.0.0"
                                                     or operation != "dismiss")
            return operation, params, wps2
        if method != "POST" or "xml" not in (environ.get("CONTENT_TYPE") or "xml"):
            return None
        stream = environ.get("wsgi.input")
        if stream is None or not hasattr(stream, "seek"):
            return None
        body = stream.read()
        stream.seek(0)
        try:
            root = etree.fromstring(body, parser=frontdoor._SAFE_XML)
        except (etree.XMLSyntaxError, ValueError):
            return None  # the front door's parser refuses it, with its reason
        qname = etree.QName(root)
        operation = qname.localname.lower()
        if qname.namespace != WPS2 or operation not in WPS2_OPERATIONS:
            return None
        if root.getroottree().docinfo.doctype:
            return None  # refused by the front door (no DTD in a WPS request)
        job_id = (root.findtext(f"{{{WPS2}}}JobID") or "").strip()
        return operation, {"jobid": job_id, "service": root.get("service", "WPS"),
                           "version": root.get("version", "2.0.0")}, True

    # -- answering --------------------------------------------------------------------------

    def answer(self, operation: str, params: dict[str, str], wps2: bool, caller: Caller) -> Any:
        from werkzeug.wrappers import Response

        service = params.get("service", "WPS")
        if service.upper() != "WPS":
            raise WpsRefusal(400, "InvalidParameterValue", f"service must be WPS, not {frontdoor.shown(service)!r}",
                             "service", wps2)
        if operation == "getexecutions":
            return Response(self.executions(params, caller), content_type="text/xml; charset=utf-8",
                            headers=[("Cache-Control", "no-store")])
        job_id = params.get("jobid", "").strip() or params.get("executionid", "").strip()
        if not job_id:
            raise WpsRefusal(400, "MissingParameterValue", "the jobId parameter is missing", "jobId", wps2)
        if operation == "dismiss":
            status = self.control.dismiss(job_id, caller)
            body = status_info(status) if wps2 else self.execute_response(status)
        elif operation == "getstatus":
            body = status_info(self.control.status(job_id, caller))
        else:
            status = self.control.status(job_id, caller)
            if status.state != JobState.SUCCEEDED:
                raise self.not_ready(status)
            body = result(status.job, self.control.outputs(status.job))
        return Response(body, content_type="text/xml; charset=utf-8", headers=[("Cache-Control", "no-store")])

    def not_ready(self, status: JobStatus) -> WpsRefusal:
        job = status.job
        if status.state == JobState.FAILED:
            return WpsRefusal(400, "NoApplicableCode", f"job {job.uuid} failed: {job.message or 'no reason recorded'}",
                              "jobId", True)
        if status.state == JobState.DISMISSED:
            return WpsRefusal(400, "NoApplicableCode", f"job {job.uuid} was {DISMISSED_REASON}", "jobId", True)
        return WpsRefusal(400, "ResultNotReady", f"job {job.uuid} is {WPS2_STATUS[status.state].lower()}; "
                          "its result is not ready", "jobId", True)

    def refusal(self, error: JobError, wps2: bool) -> WpsRefusal:
        if isinstance(error, NoSuchJob):
            return WpsRefusal(400, "NoSuchJob", error.text, "jobId", wps2)
        if isinstance(error, ResultNotReady):
            return WpsRefusal(400, "ResultNotReady", error.text, "jobId", wps2)
        if isinstance(error, JobFinished):
            return WpsRefusal(400, "InvalidParameterValue", error.text, "jobId", wps2)
        if isinstance(error, NoIdentity):
            return WpsRefusal(401, "NoApplicableCode", error.text, None, wps2)
        if isinstance(error, NotAllowed):
            return WpsRefusal(403, "NoApplicableCode", error.text, None, wps2)
        return WpsRefusal(400, "NoApplicableCode", error.text, None, wps2)

    def executions(self, params: dict[str, str], caller: Caller) -> bytes:
        """GetExecutions (WPS 1.0 vendor request): a page of jobs as ExecuteResponse elements."""
        states = []
        for word in [w for w in params.get("status", "").replace(";", ",").split(",") if w.strip()]:
            state = STATUS_WORDS.get(word.strip().lower())
            if state is None:
                raise WpsRefusal(400, "InvalidParameterValue", f"unknown status {frontdoor.shown(word)!r}; use "
                                 "ProcessAccepted, ProcessStarted, ProcessSucceeded, ProcessFailed or dismissed",
                                 "status")
            states.extend(state)
        processes = [p.strip() for p in params.get("identifier", "").split(",") if p.strip()]
        limit = _bounded(params, "maxfeatures", "maxFeatures", 10, 1, MAX_FEATURES)
        offset = _bounded(params, "startindex", "startIndex", 0, 0, MAX_START_INDEX)
        page, cursor = self.control.list(caller, states=states, processes=processes, limit=limit, offset=offset)
        wps = ElementMaker(namespace=WPS1, nsmap={"wps": WPS1, "ows": OWS1, "xlink": XLINK})
        root = wps.GetExecutionsResponse(service="WPS", version="1.0.0", count=str(len(page)))
        if cursor is not None:
            query = {key: value for key, value in params.items() if key not in ("startindex",)}
            query["startIndex"] = str(offset + limit)
            root.set("next", f"{self.config.url}?{urlencode(query)}")
        for status in page:
            root.append(self.execute_response_element(status))
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def execute_response(self, status: JobStatus) -> bytes:
        return etree.tostring(self.execute_response_element(status), xml_declaration=True, encoding="UTF-8")

    def execute_response_element(self, status: JobStatus) -> Any:
        """A WPS 1.0 ExecuteResponse of the job's state (no outputs: its statusLocation has them)."""
        job = status.job
        wps = ElementMaker(namespace=WPS1, nsmap={"wps": WPS1, "ows": OWS1, "xlink": XLINK})
        ows = ElementMaker(namespace=OWS1, nsmap={"ows": OWS1})
        config = self.config
        element = wps.ExecuteResponse(
            wps.Process(ows.Identifier(job.identifier)), service="WPS", version="1.0.0",
            serviceInstance=f"{config.url}?service=WPS&request=GetCapabilities&version=1.0.0",
            statusLocation=f"{config.outputurl.rstrip('/')}/{job.uuid}.xml")
        element.set("{http://www.w3.org/XML/1998/namespace}lang", config.language or "en-US")
        state, message = status.state, frontdoor.shown(job.message or "", 1000)
        if state == JobState.ACCEPTED:
            inner = wps.ProcessAccepted(message)
        elif state == JobState.STARTED:
            inner = wps.ProcessStarted(message, percentCompleted=str(status.percent or 0))
        elif state == JobState.SUCCEEDED:
            inner = wps.ProcessSucceeded(message)
        else:
            report = ows.ExceptionReport(ows.Exception(ows.ExceptionText(message),
                                                       exceptionCode="NoApplicableCode"), version="1.0.0")
            inner = wps.ProcessFailed(report)
        element.append(wps.Status(inner, creationTime=iso(job.updated_at) or ""))
        return element


def _bounded(params: dict[str, str], key: str, name: str, default: int, low: int, high: int) -> int:
    text = params.get(key, "").strip()
    if not text:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise WpsRefusal(400, "InvalidParameterValue", f"{name} must be a whole number from {low} to {high}", name)
    return int(text)


def status_info(status: JobStatus, now: dt.datetime | None = None) -> bytes:
    """A WPS 2.0 ``wps:StatusInfo`` (OGC 14-065, 9.5): JobID, Status, EstimatedCompletion, PercentCompleted."""
    from .jobs import utcnow

    job = status.job
    wps = ElementMaker(namespace=WPS2, nsmap={"wps": WPS2})
    root = wps.StatusInfo(wps.JobID(job.uuid), wps.Status(WPS2_STATUS[status.state]))
    estimate = status.estimated_completion(now or utcnow())
    if estimate is not None:
        root.append(wps.EstimatedCompletion(iso(estimate) or ""))
    if status.state == JobState.STARTED:
        root.append(wps.NextPoll(iso((now or utcnow()) + dt.timedelta(seconds=5)) or ""))
    if status.percent is not None:
        root.append(wps.PercentCompleted(str(status.percent)))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def result(job: JobRecord, outputs: list[Output]) -> bytes:
    """A WPS 2.0 ``wps:Result`` (OGC 14-065, 9.6) of a succeeded job's outputs."""
    wps = ElementMaker(namespace=WPS2, nsmap={"wps": WPS2, "xlink": XLINK})
    root = wps.Result(wps.JobID(job.uuid))
    for output in outputs:
        element = wps.Output(id=output.identifier)
        if output.href is not None:
            reference = wps.Reference()
            reference.set(f"{{{XLINK}}}href", output.href)
            for attribute, value in (("mimeType", output.mime_type), ("encoding", output.encoding),
                                     ("schema", output.schema)):
                if value:
                    reference.set(attribute, value)
            element.append(reference)
        else:
            data = wps.Data(output.value or "")
            mime = output.mime_type or ("text/plain" if output.literal else None)
            for attribute, value in (("mimeType", mime), ("encoding", output.encoding), ("schema", output.schema)):
                if value:
                    data.set(attribute, value)
            element.append(data)
        root.append(element)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


__all__ = ["JobOperations", "result", "status_info"]
