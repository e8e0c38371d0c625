"""The front door of the WPS endpoint: what a request must be before PyWPS runs it.

The endpoint is public, so every request is read as hostile. Two layers:

:class:`FrontDoor`, a WSGI middleware around the whole app (``/health``
included), owns what is about HTTP rather than WPS: only GET and POST
(405 with ``Allow`` otherwise), a body no larger than ``[server]
maxrequestsize`` (413), ``X-Content-Type-Options: nosniff`` on every answer,
``Cache-Control: no-store`` on every error answer (nginx caches discovery
answers: an error must never be kept), and a last guard that turns anything
escaping the app into an OGC ExceptionReport (500, logged with its traceback,
the traceback never in the answer).

:class:`FrontDoorService`, the PyWPS ``Service`` the app runs, reads the
request once (:meth:`~FrontDoorService.parse_request`: the KVP or the XML or
JSON body, then PyWPS's own parser) and checks it against the process it names
(:func:`check_execute`) before PyWPS writes a database row or creates a work
directory: unknown processes, inputs and outputs, values that do not convert
to their declared type or lie outside the allowed values, too many
occurrences, formats the process does not declare, characters XML cannot
carry, and synchronous runs longer than the site allows. A refused request
leaves nothing behind (no row, no directory).

Every refusal is a :class:`Refusal`, answered as an OWS 1.1 ExceptionReport
built with lxml (:func:`exception_report`), never by pasting client input
into markup: PyWPS's own writer escapes but passes control characters
through, which makes documents no XML parser accepts.

HTTP status per exceptionCode follows OWS Common 2.0 (OGC 06-121r9, table
28): MissingParameterValue, InvalidParameterValue and VersionNegotiationFailed
are 400; OperationNotSupported is 501 and is only used for an operation WPS
defines that this server does not implement (WPS 2.0 GetStatus, GetResult and
Dismiss reach PyWPS's parser only without the job operations' layer in front,
:mod:`.wpsjobs`, which answers them); NoApplicableCode is 400 for a request
that cannot be read at all and 500 only for a fault of the server.

Requests under the OGC API's prefix (:mod:`.ogcapi`) may also be DELETE, and
the refusals of this layer are RFC 7807 problem documents there.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, unquote_to_bytes

from lxml import etree
from lxml.builder import ElementMaker
from pywps import WPSRequest
from pywps.dblog import log_request
from pywps.exceptions import NoApplicableCode, OperationNotSupported, VersionNegotiationFailed
from pywps.inout.basic import BasicBoundingBox
from pywps.inout.inputs import ComplexInput, LiteralInput
from pywps.inout.literaltypes import AnyValue, NoValue, ValuesReference, convert
from pywps.inout.outputs import ComplexOutput, LiteralOutput
from pywps.validator.allowed_value import ALLOWEDVALUETYPE, RANGECLOSURETYPE
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from .compat import CheckedService

LOGGER = logging.getLogger("PYWPS")

OWS_NS = "http://www.opengis.net/ows/1.1"
XLINK_NS = "http://www.w3.org/1999/xlink"
WPS_NS = {"1.0.0": "http://www.opengis.net/wps/1.0.0", "2.0.0": "http://www.opengis.net/wps/2.0"}
#: The operations this server implements, as PyWPS names them.
IMPLEMENTED = ("getcapabilities", "describeprocess", "execute")
#: Operations WPS 1.0/2.0 define that this server does not implement: OperationNotSupported, 501.
NOT_IMPLEMENTED = ("getstatus", "getresult", "dismiss")
ALLOWED_METHODS = ("GET", "POST")
#: The OGC API's methods: DELETE dismisses a job.
OGCAPI_METHODS = ("GET", "POST", "DELETE")
#: The KVP parameters whose content is a list of inputs/outputs, checked one by one after parsing.
LIST_PARAMETERS = ("datainputs", "responsedocument", "rawdataoutput")
#: Longest client text echoed into a report (identifiers, values): enough to recognise it.
ECHO_LIMIT = 80
LITERAL_MIME = "text/plain"
ENCODINGS = ("", "utf-8", "base64")
BOOLEAN = {"true": True, "1": True, "false": False, "0": False}  # xs:boolean's lexical space
NUMERIC_TYPES = ("float", "integer", "positiveInteger", "nonNegativeInteger", "angle", "scale")
INTEGER_TYPES = ("integer", "positiveInteger", "nonNegativeInteger")

# Characters XML 1.0 cannot carry (production [2] Char): the C0 controls but tab, LF and CR,
# lone surrogates, U+FFFE and U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class Refusal(Exception):
    """A request the front door refuses: HTTP status, OWS exceptionCode, text, locator."""

    def __init__(self, status: int, code: str, text: str, locator: str | None = None,
                 headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(text)
        self.status = status
        self.code = code
        self.text = text
        self.locator = locator
        self.headers = list(headers)

    def response(self) -> Response:
        """The ExceptionReport as a werkzeug response (what PyWPS's ``Service.call`` returns)."""
        body = exception_report(self.code, self.text, self.locator)
        return Response(body, status=self.status, headers=self.headers,
                        content_type="text/xml; charset=utf-8")  # OWS Common 1.1 11.7.4

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self.response()(environ, start_response)


def invalid(text: str, locator: str | None) -> Refusal:
    return Refusal(400, "InvalidParameterValue", text, locator)


def missing(text: str, locator: str) -> Refusal:
    return Refusal(400, "MissingParameterValue", text, locator)


def unreadable(text: str) -> Refusal:
    return Refusal(400, "NoApplicableCode", text)


def server_fault() -> Refusal:
    return Refusal(500, "NoApplicableCode", "The server could not answer this request; the fault is logged.")


def shown(value: Any, limit: int = ECHO_LIMIT) -> str:
    """``value`` as it may be echoed to the client: characters XML cannot carry spelled as
    ``\\xNN``, and cut to ``limit`` characters."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", text)


def exception_report(code: str, text: str, locator: str | None = None) -> bytes:
    """An OWS 1.1 ExceptionReport (WPS 1.0.0), built with lxml: well-formed whatever the text."""
    ows = ElementMaker(namespace=OWS_NS, nsmap={"ows": OWS_NS})
    exception = ows.Exception(ows.ExceptionText(shown(text, 1000)), exceptionCode=code)
    if locator is not None:
        exception.set("locator", shown(locator))
    report = ows.ExceptionReport(exception, version="1.0.0")
    report.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    return etree.tostring(report, xml_declaration=True, encoding="UTF-8")


def database_fault(error: BaseException) -> bool:
    """Whether ``error`` is, or was raised while handling, an error of the database (SQLAlchemy's)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, SQLAlchemyError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def from_exception(error: BaseException, client: bool) -> Refusal:
    """The Refusal for an exception raised while serving a request.

    ``client`` says whether it was raised while reading the client's request
    (then it is the client's fault: 400 at worst) or while running it (then an
    exception PyWPS did not classify is a server fault: 500).
    """
    if isinstance(error, Refusal):
        return error
    if isinstance(error, NoApplicableCode):
        status = int(error.code or 400)
        description = str(error.description or "")
        if error.name == "NoApplicableCode" and status >= 500 and client:
            status = 400
        if error.name == "OperationNotSupported":
            status = 501
        return Refusal(status, error.name, description or error.name, error.locator or None)
    if isinstance(error, HTTPException):
        status = error.code or 400
        return Refusal(status if status < 500 or not client else 400, "NoApplicableCode",
                       error.description or error.name)
    LOGGER.error("%s a request failed", "reading" if client else "running", exc_info=error)
    return unreadable("The request could not be read.") if client else server_fault()


# -- HTTP ---------------------------------------------------------------------------------------


class FrontDoor:
    """WSGI middleware: methods, body size, ``nosniff``, and the last guard (see the module doc)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], max_request_size: int, ogcapi_prefix: str = "") -> None:
        self.app = app
        self.max_request_size = max_request_size
        #: The OGC API's path prefix: its resources answer DELETE too (a job's dismissal) and their
        #: refusals here are RFC 7807 problem documents (:mod:`.ogcapi`).
        self.ogcapi_prefix = ogcapi_prefix.rstrip("/")

    def ogcapi(self, environ: dict[str, Any]) -> bool:
        path = environ.get("PATH_INFO", "")
        return bool(self.ogcapi_prefix) and (path == self.ogcapi_prefix or path.startswith(self.ogcapi_prefix + "/"))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started: list[bool] = []

        def respond(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [(k, v) for k, v in headers if k.lower() != "x-content-type-options"]
            headers.append(("X-Content-Type-Options", "nosniff"))
            if not status.startswith(("1", "2", "3")):
                # An error answer is about this moment (a database down, a bad request): no cache
                # may keep it, nginx's discovery cache included, whatever the layer that made it.
                headers = [(k, v) for k, v in headers if k.lower() != "cache-control"]
                headers.append(("Cache-Control", "no-store"))
            started.append(True)
            return start_response(status, headers, exc_info)

        try:
            refusal = self.admit(environ)
            if refusal is not None:
                if self.ogcapi(environ):
                    from .ogcapi import Problem

                    return Problem(refusal.status, refusal.code, refusal.text, headers=refusal.headers)(
                        environ, respond)
                return refusal(environ, respond)
            return self.app(environ, respond)
        except Exception:
            LOGGER.exception("unhandled error answering %s %s", environ.get("REQUEST_METHOD"),
                             environ.get("PATH_INFO"))
            if started:  # too late for another status line: the client sees the connection cut
                raise
            if self.ogcapi(environ):
                from .ogcapi import Problem

                fault = server_fault()
                return Problem(500, "Internal Server Error", fault.text)(environ, respond)
            return server_fault()(environ, respond)

    def admit(self, environ: dict[str, Any]) -> Refusal | None:
        """The HTTP-level refusal of this request, or None; buffers the body (bounded)."""
        method = environ.get("REQUEST_METHOD", "GET").upper()
        allowed = OGCAPI_METHODS if self.ogcapi(environ) else ALLOWED_METHODS
        if method not in allowed:
            # 405, not 501: the HTTP method is not a WPS operation (OperationNotSupported is for
            # those); the resource exists and answers GET and POST, which is what 405 and its
            # Allow header say (RFC 9110 15.5.6). HEAD is refused too: a HEAD of an Execute KVP
            # would run the process only to discard the answer. OPTIONS gets the same answer,
            # whose Allow header lists the methods; no cross-origin use is offered.
            return Refusal(405, "NoApplicableCode", f"HTTP method {shown(method, 20)} is not allowed; use "
                           f"{' or '.join(allowed)}", headers=[("Allow", ", ".join(allowed))])
        if method == "POST":
            return self._buffer_body(environ)
        return None

    def _buffer_body(self, environ: dict[str, Any]) -> Refusal | None:
        too_large = Refusal(413, "FileSizeExceeded",
                            f"The request body is larger than the maximum request size of "
                            f"{self.max_request_size} bytes.")
        length = environ.get("CONTENT_LENGTH") or ""
        if length:
            try:
                declared = int(length)
            except ValueError:
                return unreadable("The Content-Length header is not a number.")
            if declared < 0:
                return unreadable("The Content-Length header is negative.")
            if declared > self.max_request_size:
                return too_large
            body = environ["wsgi.input"].read(declared) if declared else b""
        else:  # chunked or unknown length: read one byte past the limit to tell
            stream = environ.get("wsgi.input")
            body = stream.read(self.max_request_size + 1) if stream is not None else b""
            if len(body) > self.max_request_size:
                return too_large
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return None


# -- WPS -----------------------------------------------------------------------------------------


class FrontDoorService(CheckedService):
    """The PyWPS service of the app: requests are read and checked before PyWPS acts on them.

    ``sync_max_runtime``: seconds a synchronous Execute may be expected to take
    (``[gridengine] sync_max_runtime``); longer ones are refused with the advice to run
    them asynchronously.
    """

    def __init__(self, processes: list[Any], cfgfiles: list[str] | None, sync_max_runtime: float) -> None:
        super().__init__(processes=processes, cfgfiles=cfgfiles)
        self.sync_max_runtime = sync_max_runtime

    def parse_request(self, http_request: Any) -> Any:
        """The client's request read into a ``WPSRequest``, or a :class:`Refusal`."""
        if http_request.method == "GET":
            check_kvp(http_request.environ.get("QUERY_STRING", ""))
        elif "json" in (http_request.content_type or ""):
            check_json(http_request.get_data())
        else:
            check_xml(http_request.get_data())
        try:
            wps_request = WPSRequest(http_request, self.preprocessors)
        except OperationNotSupported as e:
            if str(e.locator or "").lower() in NOT_IMPLEMENTED:
                raise from_exception(e, client=True) from e
            # Not an operation WPS defines: a wrong value of the request parameter (OperationNotSupported
            # and its 501 are for operations of the service type this server does not implement).
            raise invalid(f"Unknown request {shown(e.locator or '')!r}", "request") from e
        except VersionNegotiationFailed as e:
            # OWS Common 7.3.2: VersionNegotiationFailed answers GetCapabilities' AcceptVersions; the version
            # parameter of another operation is a parameter like any other.
            if (http_request.args.get("request") or "").lower() == "getcapabilities":
                raise from_exception(e, client=True) from e
            raise invalid(str(e.description), "version") from e
        except Exception as e:
            raise from_exception(e, client=True) from e
        operation = (wps_request.operation or "").lower()
        if http_request.method == "GET" and operation in ("describeprocess", "execute") \
                and not any(key.lower() == "version" for key in http_request.args):
            # OWS Common 7.4: version is mandatory in every request but GetCapabilities; PyWPS defaults it.
            raise missing("The version parameter is missing (1.0.0)", "version")
        return wps_request

    def check_request(self, wps_request: Any) -> None:
        operation = (wps_request.operation or "").lower()
        if operation == "describeprocess":
            for identifier in wps_request.identifiers or []:
                if identifier != "all" and identifier not in self.processes:
                    raise invalid(f"Unknown process {shown(identifier)!r}", "Identifier")
        elif operation == "execute":
            check_execute(self, wps_request)

    def report(self, error: BaseException, client: bool) -> Any:
        if isinstance(error, HTTPException) and not type(error).__module__.startswith(("pywps.", "werkzeug.")):
            return error  # the app's own answers (admission's 503 ServerBusy with its Retry-After) stand as they are
        if not client and database_fault(error):
            # The database went away while the request ran (after admission found it answering):
            # PyWPS's own queries (its maxparallel count, its status updates) raise it unhandled.
            # The client is told to retry, as when admission finds it down.
            from . import admission

            LOGGER.warning("request refused, the database stopped answering: %s", str(error).splitlines()[0])
            return admission.unavailable(admission.current_settings(), admission.DATABASE_DOWN)
        return from_exception(error, client).response()

    def log_request(self, request_uuid: uuid.UUID, wps_request: Any) -> None:
        log_request(request_uuid, wps_request)


def check_kvp(query: str) -> None:
    """The raw query string: UTF-8, no parameter twice, no character XML cannot carry.

    Values of DataInputs, ResponseDocument and RawDataOutput are lists whose
    items PyWPS percent-decodes once more; their items are checked after parsing
    (:func:`check_execute`), where the locator can name the input or output.
    """
    seen: set[str] = set()
    for raw_key, raw_value in parse_qsl(query, keep_blank_values=True, encoding="latin-1"):
        key_bytes = unquote_to_bytes(raw_key.encode("latin-1"))
        try:
            key = raw_key.encode("latin-1").decode("utf-8")
            raw_value.encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:
            raise invalid("The parameter is not UTF-8 text", shown(key_bytes.decode("utf-8", "replace"))) from None
        name = key.lower()
        if name in seen:
            # OWS Common 11.3: parameter names are case-insensitive, so Request and REQUEST are
            # the same parameter; PyWPS would silently take the last one.
            raise invalid(f"The parameter {shown(key)} is given more than once", key)
        seen.add(name)
        if _NOT_XML.search(key):
            raise invalid("A parameter name contains a control character", shown(key))
        value = raw_value.encode("latin-1").decode("utf-8")
        if name not in LIST_PARAMETERS and _NOT_XML.search(value):
            raise invalid(f"The value of {key} contains a control character", key)


_SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                            remove_comments=True, remove_pis=True)


def check_xml(body: bytes) -> None:
    """An XML request body: well-formed, no DTD, a WPS 1.0.0 request whose identifiers are present.

    lxml with entity resolution, network access and DTD loading off (no
    external entity is ever read); a DTD is refused outright, since no WPS
    request has one (internal entities are the "billion laughs").
    """
    if not body.strip():
        raise missing("The POST body is empty: send a WPS request document", "request")
    try:
        doc = etree.fromstring(body, parser=_SAFE_XML)
    except (etree.XMLSyntaxError, ValueError) as e:
        raise unreadable(f"The request body is not well-formed XML: {shown(str(e), 200)}") from None
    docinfo = doc.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise unreadable("The request body has a document type declaration (DTD); WPS requests have none")
    qname = etree.QName(doc)
    name = qname.localname
    if qname.namespace == WPS_NS["2.0.0"] and name.lower() in NOT_IMPLEMENTED:
        raise Refusal(501, "OperationNotSupported", f"{name} (WPS 2.0) is not supported by this server", name)
    if qname.namespace not in WPS_NS.values():
        raise invalid(f"The root element {shown(name)} is not in the WPS 1.0.0 namespace {WPS_NS['1.0.0']}",
                      "request")
    if name.lower() not in IMPLEMENTED:
        raise invalid(f"Unknown request {shown(name)}", "request")
    if name != "Execute":
        return
    ns = {"wps": qname.namespace, "ows": OWS_NS}
    if not _identifier(doc, ns):
        raise missing("The Execute request has no ows:Identifier of a process", "Identifier")
    for input_el in doc.iterfind("wps:DataInputs/wps:Input", ns):
        identifier = _identifier(input_el, ns)
        if not identifier:
            raise missing("An Input of the Execute request has no ows:Identifier", "Identifier")
        sources = [el for el in input_el if etree.QName(el).localname in ("Data", "Reference")]
        if len(sources) != 1:
            raise invalid(f"Input {shown(identifier)} must have exactly one wps:Data or wps:Reference", identifier)
        if input_el.find("wps:Reference/wps:Header", ns) is not None:
            # PyWPS 4.8 cannot read wps:Header (it fails on it) and would fetch without it anyway:
            # references are fetched with no client-supplied header.
            raise invalid(f"Input {shown(identifier)}: wps:Header in a Reference is not supported", identifier)
    for output_el in doc.iterfind("wps:ResponseForm/*", ns):
        if etree.QName(output_el).localname == "RawDataOutput":
            outputs = [output_el]
        else:
            outputs = output_el.findall("wps:Output", ns)
        for out in outputs:
            if not _identifier(out, ns):
                raise missing("An output of the ResponseForm has no ows:Identifier", "Identifier")


def _identifier(element: Any, ns: Mapping[str, str]) -> str:
    found = element.findall("ows:Identifier", ns)
    return (found[0].text or "").strip() if len(found) == 1 else ""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(body: bytes) -> Any:
    """``body`` parsed as JSON, refusing NaN and Infinity (Python's json takes them; RFC 8259 does not).

    Raises ValueError (UnicodeDecodeError is one) for what is not JSON, RecursionError for nesting
    deeper than the interpreter allows.
    """
    return json.loads(body, parse_constant=_no_constant)


def check_json(body: bytes) -> None:
    """A JSON request body (PyWPS's own JSON encoding of Execute): an object with sane members."""
    try:
        doc = strict_json(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise unreadable(f"The request body is not JSON: {shown(str(e), 200)}") from None
    if not isinstance(doc, dict):
        raise unreadable("The JSON request body must be an object")
    for key in ("identifier", "operation", "version", "language"):
        if key in doc and not isinstance(doc[key], str):
            raise invalid(f"{key} must be a string", key)
    if "inputs" in doc and not isinstance(doc["inputs"], dict):
        raise invalid("inputs must be an object of input identifiers", "inputs")
    for identifier, values in (doc.get("inputs") or {}).items():
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, dict) and not isinstance(value.get("type", "literal"), str):
                raise invalid(f"Input {shown(identifier)}: type must be a string", identifier)
            if not isinstance(value, dict | str | int | float | bool):
                raise invalid(f"Input {shown(identifier)}: a value must be a string, a number or an object",
                              identifier)
    outputs = doc.get("outputs", {})
    if not isinstance(outputs, dict | list | str):
        raise invalid("outputs must be an object, a list or an output identifier", "outputs")
    if isinstance(outputs, dict) and not all(isinstance(v, dict | list) for v in outputs.values()):
        raise invalid("each output must be an object of its choices", "outputs")
    if isinstance(outputs, list) and not all(isinstance(v, str) for v in outputs):
        raise invalid("outputs must list output identifiers", "outputs")


# -- Execute --------------------------------------------------------------------------------------


def check_execute(service: FrontDoorService, wps_request: Any) -> None:
    """Check an Execute against its process before PyWPS acts on it; raise a :class:`Refusal`.

    Normalises what it accepts so that PyWPS reads it as checked: the mode
    booleans in lower case, the mimeType of a raw literal output text/plain.
    """
    identifier = wps_request.identifier
    if not isinstance(identifier, str) or not identifier:
        raise missing("The process identifier is missing", "Identifier")
    process = service.processes.get(identifier)
    if process is None:
        raise invalid(f"Unknown process {shown(identifier)!r}", "Identifier")
    for name, attr in (("storeExecuteResponse", "store_execute"), ("status", "status"), ("lineage", "lineage")):
        value = getattr(wps_request, attr)
        if value is None or isinstance(value, bool):
            continue
        if str(value).lower() not in ("true", "false"):
            raise invalid(f"{name} must be true or false, not {shown(value)!r}", name)
        setattr(wps_request, attr, str(value).lower())
    if isinstance(wps_request.output_ids, str):
        wps_request.outputs = parse_output_kvp(wps_request.output_ids, "RawDataOutput" if wps_request.raw
                                               else "ResponseDocument")
    values = check_inputs(process, wps_request.inputs or {})
    check_outputs(process, wps_request)
    asynchronous = wps_request.store_execute == "true" and wps_request.status == "true" and not wps_request.raw
    if not asynchronous:
        check_sync_runtime(process, values, service.sync_max_runtime)


def parse_output_kvp(text: str, form: str) -> dict[str, dict[str, str]]:
    """ResponseDocument/RawDataOutput in KVP as WPS 1.0.0 (10.2.2) writes it:
    ``output@mimeType=text/csv@asReference=true;other``.

    PyWPS 4.8 reads only ``output=@mimeType=...`` (it splits the first item at
    ``=``) and takes ``output@mimeType=text/csv`` for an output of that name;
    both spellings are read here.
    """
    outputs: dict[str, dict[str, str]] = {}
    for item in text.split(";"):
        identifier, *attributes = item.split("@")
        identifier = identifier.split("=", 1)[0]
        choice = {identifier: ""}
        for attribute in attributes:
            key, sep, value = attribute.partition("=")
            if not sep or not key:
                raise invalid(f"{form}: {shown(attribute)!r} is not attribute=value", form)
            choice[key] = unquote(value)
        if identifier in outputs:
            raise invalid(f"{form} names output {shown(identifier)} twice", shown(identifier))
        outputs[identifier] = choice
    return outputs


def check_inputs(process: Any, inputs: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Every requested input: declared, not too often, each value valid. Returns the converted
    literal values by identifier (defaults included), for the runtime estimate."""
    declared = {inpt.identifier: inpt for inpt in process.inputs}
    values: dict[str, list[Any]] = {}
    for identifier, items in inputs.items():
        name = re.split("[=@]", identifier, maxsplit=1)[0] if isinstance(identifier, str) else ""
        if isinstance(items, Mapping) and name in declared:
            # PyWPS's reading of a KVP item it could not split: "text=@xlink:href=http://a@b/" (an "@" not
            # percent-encoded) becomes an input of that whole name
            raise invalid(f"Input {name}: {shown(identifier)!r} is not identifier=value@attribute=value, with "
                          f"'@', ';' and '=' in values percent-encoded", name)
        if not isinstance(identifier, str) or identifier not in declared:
            raise invalid(f"Process {process.identifier} has no input {shown(identifier)!r}", shown(identifier))
        inpt = declared[identifier]
        if isinstance(items, Mapping):  # PyWPS's reading of a KVP item without "=": identifier only
            raise invalid(f"Input {identifier} has no value: write {identifier}=value", identifier)
        items = list(items) if isinstance(items, list | tuple) else [items]
        if inpt.max_occurs is not None and len(items) > inpt.max_occurs:
            raise invalid(f"Input {identifier} is given {len(items)} times; at most {inpt.max_occurs} allowed",
                          identifier)
        if isinstance(inpt, LiteralInput):
            values[identifier] = [check_literal(inpt, item) for item in items]
        elif isinstance(inpt, ComplexInput):
            for item in items:
                check_complex(inpt, item)
        elif isinstance(inpt, BasicBoundingBox):
            continue  # none of the app's processes has one; PyWPS reads them
    for identifier, inpt in declared.items():
        if identifier in values or identifier in inputs:
            continue
        if inpt.min_occurs > 0:
            raise missing(f"Input {identifier} is required", identifier)
        default = inpt.data if isinstance(inpt, LiteralInput) else None  # a declared input's data is its default
        if default is not None:
            values[identifier] = [default]
    return values


def check_literal(inpt: Any, item: Any) -> Any:
    """One literal value: XML-safe, of the declared type, within the allowed values. Returns it converted."""
    identifier = inpt.identifier
    if not isinstance(item, Mapping):
        raise invalid(f"Input {identifier}: not a literal value", identifier)
    for key, value in item.items():
        if isinstance(value, str) and (_NOT_XML.search(value) or _NOT_XML.search(str(key))):
            raise invalid(f"Input {identifier} contains a control character", identifier)
    if item.get("href"):
        raise invalid(f"Input {identifier} is a literal value and cannot be given by reference", identifier)
    datatype = str(item.get("datatype") or "")
    if datatype and re.split(r"[:#/]", datatype)[-1].lower() != inpt.data_type.lower():
        raise invalid(f"Input {identifier} is of type {inpt.data_type}, not {shown(datatype)}", identifier)
    item_uom = str(item.get("uom") or "")
    if item_uom and item_uom not in [getattr(u, "uom", u) for u in (inpt.uoms or [])]:
        raise invalid(f"Input {identifier} has no unit of measure {shown(item_uom)!r}", identifier)
    raw = item.get("data")
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise invalid(f"Input {identifier}: no literal value given", identifier)
    text = str(raw).strip()
    value = convert_literal(inpt, text)
    if not allowed(inpt, value, text):
        raise invalid(f"Input {identifier}: {shown(text)!r} is not one of the allowed values", identifier)
    return value


def convert_literal(inpt: Any, text: str) -> Any:
    """``text`` converted to the input's type by PyWPS's converters, stricter where they guess."""
    identifier, data_type = inpt.identifier, inpt.data_type
    bad = invalid(f"Input {identifier}: {shown(text)!r} is not a valid {data_type}", identifier)
    if data_type in NUMERIC_TYPES:
        try:
            number = float(text)
        except ValueError:
            raise bad from None
        if not math.isfinite(number):
            raise bad
        if data_type in INTEGER_TYPES and not re.fullmatch(r"[+-]?\d+", text):
            raise bad  # PyWPS would take int(float("1.5")) = 1
    if data_type == "boolean":
        if text.lower() not in BOOLEAN:
            raise bad  # PyWPS takes anything but "false"/"0" for true
        return BOOLEAN[text.lower()]
    try:
        value = convert(data_type, text)
    except Exception:  # ValueError, OverflowError (year 10000, 1e400), PyWPS's own InvalidParameterValue
        raise bad from None
    if data_type == "positiveInteger" and value < 1:
        raise bad
    if data_type == "angle":
        return float(text)  # PyWPS wraps angles modulo 360, so 400 would become 40
    return value


def allowed(inpt: Any, value: Any, text: str) -> bool:
    """Whether ``value`` is among the input's allowed values (values and closed/open ranges)."""
    allowed_values = [a for a in (inpt.allowed_values or []) if not isinstance(a, AnyValue | NoValue | ValuesReference)]
    if not allowed_values or len(allowed_values) != len(inpt.allowed_values or []):
        return True
    for rule in allowed_values:
        if rule.allowed_type == ALLOWEDVALUETYPE.VALUE:
            try:
                if value == convert(inpt.data_type, rule.value) or text == str(rule.value):
                    return True
            except Exception:
                continue
        elif rule.allowed_type == ALLOWEDVALUETYPE.RANGE:
            closure = rule.range_closure or RANGECLOSURETYPE.CLOSED
            low, high = rule.minval, rule.maxval
            if low is not None and (value < low or (value == low and closure in ("open", "open-closed"))):
                continue
            if high is not None and (value > high or (value == high and closure in ("open", "closed-open"))):
                continue
            if rule.spacing and low is not None and (value - low) % rule.spacing:
                continue
            return True
    return False


def check_complex(inpt: Any, item: Any) -> None:
    """One complex value: a declared format, a known encoding; inline data within maxsingleinputsize."""
    identifier = inpt.identifier
    if not isinstance(item, Mapping):
        raise invalid(f"Input {identifier}: not a complex value", identifier)
    mime = item.get("mimeType") or item.get("mimetype") or ""
    formats = inpt.supported_formats or []
    if not isinstance(mime, str) or (mime and mime not in [f.mime_type for f in formats]):
        raise invalid(f"Input {identifier}: mimeType {shown(mime)!r} is not one of "
                      f"{', '.join(f.mime_type for f in formats)}", identifier)
    encoding = item.get("encoding") or ""
    if not isinstance(encoding, str) or encoding.lower() not in ENCODINGS:
        raise invalid(f"Input {identifier}: encoding {shown(encoding)!r} is not supported", identifier)
    schema = item.get("schema") or ""
    if schema and schema not in [f.schema for f in formats]:
        raise invalid(f"Input {identifier}: schema {shown(schema)!r} is not supported", identifier)
    data = item.get("data")
    if item.get("href"):
        return  # a reference: the fetch policy decides
    if not isinstance(data, str | bytes):
        raise invalid(f"Input {identifier}: no data given", identifier)
    if isinstance(data, str) and _NOT_XML.search(data):
        raise invalid(f"Input {identifier} contains a control character", identifier)
    limit = max_single_input_size()
    if limit and len(data) > limit:
        raise Refusal(400, "FileSizeExceeded", f"Input {identifier} is larger than {limit} bytes", identifier)


def max_single_input_size() -> int:
    from pywps import configuration

    return int(configuration.get_size_mb(configuration.get_config_value("server", "maxsingleinputsize"))
               * 1024 * 1024)


def check_outputs(process: Any, wps_request: Any) -> None:
    """The requested outputs: declared ones, in a declared format; one, for RawDataOutput."""
    declared = {out.identifier: out for out in process.outputs}
    outputs = wps_request.outputs or {}
    form = "RawDataOutput" if wps_request.raw else "ResponseDocument"
    if not isinstance(outputs, Mapping):
        raise invalid(f"{form} is not a list of outputs", form)
    if wps_request.raw and len(outputs) != 1:
        raise invalid("RawDataOutput names exactly one output", form) if outputs else missing(
            "RawDataOutput names no output", form)
    for identifier, choice in outputs.items():
        if not isinstance(identifier, str) or not identifier:
            raise missing(f"An output of {form} has no identifier", form)
        if identifier not in declared:
            raise invalid(f"Process {process.identifier} has no output {shown(identifier)!r}", shown(identifier))
        output = declared[identifier]
        choice = choice if isinstance(choice, dict) else {}
        for key, value in choice.items():
            if isinstance(value, str) and _NOT_XML.search(value):
                raise invalid(f"Output {identifier} contains a control character", identifier)
        lowered = {str(k).lower(): v for k, v in choice.items()}
        mime = lowered.get("mimetype") or ""
        if isinstance(output, ComplexOutput):
            types = [f.mime_type for f in output.supported_formats]
            schemas = [f.schema for f in output.supported_formats]
        else:
            types, schemas = [LITERAL_MIME], [""]
        if not isinstance(mime, str) or (mime and mime not in types):
            raise invalid(f"Output {identifier}: mimeType {shown(mime)!r} is not one of {', '.join(types)}",
                          identifier)
        encoding = lowered.get("encoding") or ""
        if not isinstance(encoding, str) or encoding.lower() not in ENCODINGS:
            raise invalid(f"Output {identifier}: encoding {shown(encoding)!r} is not supported", identifier)
        schema = lowered.get("schema") or ""
        if schema and schema not in schemas:
            raise invalid(f"Output {identifier}: schema {shown(schema)!r} is not supported", identifier)
        reference = lowered.get("asreference")
        if reference not in (None, ""):
            if str(reference).lower() not in ("true", "false"):
                raise invalid(f"Output {identifier}: asReference must be true or false", identifier)
            if str(reference).lower() == "true" and not isinstance(output, ComplexOutput):
                raise invalid(f"Output {identifier} is a literal value and cannot be returned by reference",
                              identifier)
        output_uom = lowered.get("uom") or ""
        if output_uom and output_uom not in [getattr(u, "uom", u) for u in (getattr(output, "uoms", None) or [])]:
            raise invalid(f"Output {identifier} has no unit of measure {shown(output_uom)!r}", identifier)
        if wps_request.raw and isinstance(output, LiteralOutput):
            # PyWPS serves a raw literal with whatever mimeType the client named.
            for key in [k for k in choice if str(k).lower() == "mimetype"]:
                del choice[key]
            choice["mimetype"] = LITERAL_MIME


def check_sync_runtime(process: Any, values: Mapping[str, list[Any]], site_limit: float) -> None:
    """A synchronous Execute holds a web worker: only processes that allow it, within the limit."""
    advice = ("run it asynchronously: Execute with storeExecuteResponse=true and status=true "
              "(mode=async), then poll the statusLocation")
    if not getattr(process, "synchronous", True):
        raise invalid(f"Process {process.identifier} does not run synchronously; {advice}", "storeExecuteResponse")
    limits = [site_limit] + [x for x in [getattr(process, "max_sync_runtime", None)] if x is not None]
    limit = min(limits)
    estimate = getattr(process, "expected_runtime", None)
    seconds = float(estimate(values)) if callable(estimate) else 0.0
    if seconds > limit:
        raise invalid(f"Process {process.identifier} would run about {seconds:g} s with these inputs; "
                      f"synchronous requests may take at most {limit:g} s; {advice}", "storeExecuteResponse")


def wrap(app: Callable[..., Iterable[bytes]], config: Any, ogcapi_prefix: str = "") -> FrontDoor:
    """The front door around ``app`` with the limits of ``config``."""
    from pywps import configuration

    size = configuration.get_size_mb(configuration.get_config_value("server", "maxrequestsize"))
    return FrontDoor(app, int(size * 1024 * 1024), ogcapi_prefix)


__all__ = ["FrontDoor", "FrontDoorService", "Refusal", "exception_report", "wrap"]
