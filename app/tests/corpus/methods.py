"""HTTP methods, paths, WPS 2.0 operations and traversal on /wpsoutputs/.

Methods: GET and POST are the WPS bindings. Every other method gets 405 with
``Allow: GET, POST`` (the resource exists; the method is not one it answers):
HEAD too, since a HEAD of an Execute URL would run the process to discard its
answer, and OPTIONS, whose question the Allow header answers (no cross-origin
use is offered). A HEAD answer has no body, so no exceptionCode is checked.

WPS 2.0 GetStatus, GetResult and Dismiss are answered from the job table
(the app's wpsjobs module): a missing job id is MissingParameterValue, one
no job has (a path, a NUL, a uuid nobody was given) is NoSuchJob, both 400
in an OWS 2.0 ExceptionReport (OGC 14-065). The WPS 1.0 vendor Dismiss
answers in OWS 1.1.
"""

from __future__ import annotations

from . import Case

WPS2 = "service=WPS&version=2.0.0&request="


def method(verb: str, path: str = "/wps") -> Case:
    return Case(f"method_{verb.lower()}{'_health' if path != '/wps' else ''}", "method", 405, "NoApplicableCode",
                method=verb, path=path, query="service=WPS&request=GetCapabilities")


def wps2(name: str, operation: str, query: str) -> Case:
    code = "NoSuchJob" if "jobId=" in query else "MissingParameterValue"
    return Case(name, "wps2", 400, code, "jobId", query=f"{WPS2}{operation}{query}")


CASES = [
    method("PUT"), method("DELETE"), method("PATCH"), method("OPTIONS"), method("TRACE"), method("PROPFIND"),
    method("DELETE", "/health"),
    Case("method_head", "method", 405, None, method="HEAD", query="service=WPS&request=GetCapabilities",
         note="a HEAD answer has no body"),
    Case("health_get", "method", 200, path="/health", where="app",
         note="behind nginx /health is reachable only from listed addresses"),
    Case("path_identifier_in_path_nul", "kvp", 400, "InvalidParameterValue", "Identifier", path="/wps/hel%00lo",
         query="service=WPS&version=1.0.0&request=DescribeProcess", where="app",
         note="behind nginx: nginx_path_identifier_in_path_nul"),
    wps2("wps2_getstatus_without_jobid", "GetStatus", ""),
    wps2("wps2_getstatus_bad_jobid", "GetStatus", "&jobId=../../etc/passwd"),
    wps2("wps2_getstatus_nul_jobid", "GetStatus", "&jobId=%2500"),
    wps2("wps2_getresult_without_jobid", "GetResult", ""),
    wps2("wps2_getresult_bad_jobid", "GetResult", "&jobId=not-a-uuid"),
    wps2("wps2_dismiss_without_jobid", "Dismiss", ""),
    wps2("wps2_dismiss_bad_jobid", "Dismiss", "&jobId=00000000-0000-0000-0000-000000000000"),
    wps2("wps2_getstatus_sql_jobid", "GetStatus", "&jobId=%27%20OR%201%3D1%20--"),
    wps2("wps2_getresult_long_jobid", "GetResult", "&jobId=" + "a" * 2000),
    Case("wps1_dismiss_unknown_job", "wps2", 400, "NoSuchJob", "jobId",
         query="service=WPS&version=1.0.0&request=Dismiss&jobId=00000000-0000-4000-8000-000000000000"),
    Case("wps1_dismiss_twice_named", "wps2", 400, "InvalidParameterValue", "jobid",
         query="service=WPS&version=1.0.0&request=Dismiss&jobId=a&jobid=b"),
    Case("wps1_get_executions_bad_status", "wps2", 400, "InvalidParameterValue", "status",
         query="service=WPS&version=1.0.0&request=GetExecutions&status=Sleeping"),
    Case("wps1_get_executions_huge_page", "wps2", 400, "InvalidParameterValue", "maxFeatures",
         query="service=WPS&version=1.0.0&request=GetExecutions&maxFeatures=99999999999999999999"),
    Case("wps2_getstatus_xml", "wps2", 400, "NoSuchJob", "jobId", method="POST",
         body=b'<wps:GetStatus service="WPS" version="2.0.0" xmlns:wps="http://www.opengis.net/wps/2.0">'
              b"<wps:JobID>x</wps:JobID></wps:GetStatus>", headers=(("Content-Type", "application/xml"),)),
    Case("wps2_dismiss_xml", "wps2", 400, "MissingParameterValue", "jobId", method="POST",
         body=b'<wps:Dismiss service="WPS" version="2.0.0" xmlns:wps="http://www.opengis.net/wps/2.0"/>',
         headers=(("Content-Type", "application/xml"),)),
    # nginx serves /wpsoutputs/ from the shared outputs directory: the app never sees these.
    Case("traversal_dotdot", "traversal", 400, path="/wpsoutputs/../../etc/passwd", where="cluster"),
    Case("traversal_encoded_dotdot", "traversal", 400, path="/wpsoutputs/%2e%2e/%2e%2e/etc/passwd", where="cluster"),
    Case("traversal_encoded_slash", "traversal", 400, path="/wpsoutputs/..%2f..%2fetc%2fpasswd", where="cluster"),
    Case("traversal_nul", "traversal", 400, path="/wpsoutputs/x%00.xml", where="cluster"),
    Case("traversal_missing_document", "traversal", 404, path="/wpsoutputs/00000000-0000-0000-0000-000000000000.xml",
         where="cluster"),
]
