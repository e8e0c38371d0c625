"""Helpers of the app's tests: a client of the app, and reading WPS 1.0.0 documents."""

from __future__ import annotations

import os
from typing import Any

from lxml import etree
from pywps import namespaces100
from pywps.tests import WpsClient, client_for

NS = {key: namespaces100[key] for key in ("wps", "ows", "xlink")}


def app_client(config: Any) -> WpsClient:
    """``pywps.tests`` client of the app (``/health`` included) built over ``config``."""
    from pywps_gridengine.wsgi import create_service, make_app

    return client_for(make_app(create_service(config), config))


def xml(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def status_of(doc: etree._Element) -> str:
    status = doc.find("wps:Status", NS)
    assert status is not None, etree.tostring(doc)
    return etree.QName(status[0]).localname


def status_text(doc: etree._Element) -> str:
    status = doc.find("wps:Status", NS)
    return " ".join(status.itertext()).strip()


def literal_output(doc: etree._Element, identifier: str) -> str:
    for out in doc.iterfind(".//wps:ProcessOutputs/wps:Output", NS):
        if out.findtext("ows:Identifier", namespaces=NS) == identifier:
            return out.findtext(".//wps:LiteralData", namespaces=NS)
    raise AssertionError(f"no output {identifier}: {etree.tostring(doc)}")


def output_element(doc: etree._Element, identifier: str) -> etree._Element:
    for out in doc.iterfind(".//wps:ProcessOutputs/wps:Output", NS):
        if out.findtext("ows:Identifier", namespaces=NS) == identifier:
            return out
    raise AssertionError(f"no output {identifier}: {etree.tostring(doc)}")


def uuid_from_status_location(doc: etree._Element) -> str:
    location = doc.get("statusLocation")
    return os.path.basename(location)[: -len(".xml")]
