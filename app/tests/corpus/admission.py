"""Admission control: what the front door answers when it is busy or something behind it is down.

``CASES`` hold in any state of the service (discovery never needs the
database, so it answers in a healthy service and during an outage alike) and
run with the rest of the corpus. The two other lists state what a single
request gets under a condition the runner must set up first, so they are not
in ``CASES``: ``tests/test_admission.py`` runs them against the app with the
database unreachable and with the job cap reached; a cluster scenario can run
them with PostgreSQL stopped or the cap reached.
"""

from __future__ import annotations

from . import Case

EXECUTE_ASYNC = ("service=WPS&request=Execute&version=1.0.0&identifier=sleep&datainputs=delay%3D0"
                 "&storeExecuteResponse=true&status=true")
EXECUTE_SYNC = "service=WPS&request=Execute&version=1.0.0&identifier=hello&datainputs=name%3DFriday"
EXECUTE_XML_ASYNC = b"""<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0"
    xmlns:ows="http://www.opengis.net/ows/1.1">
  <ows:Identifier>sleep</ows:Identifier>
  <wps:DataInputs>
    <wps:Input><ows:Identifier>delay</ows:Identifier><wps:Data><wps:LiteralData>0</wps:LiteralData></wps:Data>
    </wps:Input>
  </wps:DataInputs>
  <wps:ResponseForm>
    <wps:ResponseDocument storeExecuteResponse="true" status="true"/>
  </wps:ResponseForm>
</wps:Execute>
"""
XML = (("Content-Type", "text/xml"),)

DISCOVERY = [
    Case("outage-getcapabilities-needs-no-database", "outage", 200,
         query="service=WPS&request=GetCapabilities",
         note="discovery writes no request row, so it answers with PostgreSQL down"),
    Case("outage-describeprocess-needs-no-database", "outage", 200,
         query="service=WPS&version=1.0.0&request=DescribeProcess&identifier=sleep,hello"),
    Case("outage-describeprocess-all-needs-no-database", "outage", 200,
         query="SERVICE=wps&VERSION=1.0.0&REQUEST=describeprocess&IDENTIFIER=all"),
]

CASES = DISCOVERY

DURING_DATABASE_OUTAGE = [
    *DISCOVERY,
    Case("outage-execute-async-is-503", "outage", 503, "ServerBusy", query=EXECUTE_ASYNC, where="app",
         note="Retry-After, within 5 s, no row, no work directory"),
    Case("outage-execute-sync-is-503", "outage", 503, "ServerBusy", query=EXECUTE_SYNC, where="app"),
    Case("outage-execute-lowercase-request-is-503", "outage", 503, "ServerBusy", where="app",
         query="SERVICE=wps&REQUEST=execute&VERSION=1.0.0&IDENTIFIER=hello&DATAINPUTS=name%3Dx"),
    Case("outage-execute-xml-is-503", "outage", 503, "ServerBusy", method="POST", body=EXECUTE_XML_ASYNC,
         headers=XML, where="app"),
]

AT_THE_CAP = [
    Case("busy-execute-async-is-503", "busy", 503, "ServerBusy", query=EXECUTE_ASYNC, where="app",
         note="max_active_jobs reached: ServerBusy with Retry-After"),
    Case("busy-execute-xml-async-is-503", "busy", 503, "ServerBusy", method="POST", body=EXECUTE_XML_ASYNC,
         headers=XML, where="app"),
    Case("busy-execute-sync-still-runs", "busy", 200, query=EXECUTE_SYNC, where="app",
         note="the caps count asynchronous jobs; a synchronous run holds a worker, not a job"),
    Case("busy-getcapabilities-still-answers", "busy", 200, query="service=WPS&request=GetCapabilities",
         where="app"),
]
