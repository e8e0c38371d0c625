"""Inputs by reference the service must not fetch (server-side request forgery), kind ``reference``.

Every case is refused before any connection is made: by scheme, by method, or
by the address the host resolves to (loopback, link-local, private, ...), so
the same answer holds in pytest and on the cluster behind nginx, with no
network. What a fetch does once allowed (redirect hops, timeouts, size) needs
a server to talk to: ``tests/test_fetch.py`` runs one.
"""

from __future__ import annotations

from . import Case

_EXECUTE = "service=WPS&request=Execute&version=1.0.0&identifier=wordcount&datainputs=text=@xlink:href="
_ASYNC = "&storeExecuteResponse=true&status=true"
_XML_HEADERS = (("Content-Type", "text/xml; charset=utf-8"),)


def _kvp(name: str, href: str, note: str = "", extra: str = "") -> Case:
    return Case(name=name, kind="reference", status=400, code="InvalidParameterValue", locator="text",
                query=_EXECUTE + href + extra, note=note)


def _xml(name: str, href: str, attributes: str = "", inner: str = "", note: str = "") -> Case:
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0"
    xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink">
  <ows:Identifier>wordcount</ows:Identifier>
  <wps:DataInputs>
    <wps:Input>
      <ows:Identifier>text</ows:Identifier>
      <wps:Reference xlink:href="{href}" mimeType="text/plain"{attributes}>{inner}</wps:Reference>
    </wps:Input>
  </wps:DataInputs>
</wps:Execute>
""".encode()
    return Case(name=name, kind="reference", status=400, code="InvalidParameterValue", locator="text",
                method="POST", body=body, headers=_XML_HEADERS, note=note)


CASES = [
    _kvp("reference-loopback-ip", "http://127.0.0.1/health", "the web host's own health check"),
    _kvp("reference-loopback-name", "http://localhost/health", "localhost resolves to loopback"),
    _kvp("reference-loopback-decimal", "http://2130706433/", "127.0.0.1 written as one decimal number"),
    _kvp("reference-loopback-octal", "http://0177.0.0.1/", "127.0.0.1 with an octal first part"),
    _kvp("reference-loopback-hex", "http://0x7f000001/", "127.0.0.1 as one hexadecimal number"),
    _kvp("reference-loopback-short", "http://127.1/", "127.0.0.1 with the zeros left out"),
    _kvp("reference-loopback-other", "http://127.0.0.2:5432/", "another loopback address, PostgreSQL's port"),
    _kvp("reference-ipv6-loopback", "http://%5B::1%5D/"),
    _kvp("reference-ipv4-mapped-loopback", "http://%5B::ffff:127.0.0.1%5D/", "IPv4-mapped IPv6 form of loopback"),
    _kvp("reference-ipv4-mapped-metadata", "http://%5B::ffff:169.254.169.254%5D/"),
    _kvp("reference-cloud-metadata", "http://169.254.169.254/latest/meta-data/", "link-local metadata service"),
    _kvp("reference-private-10", "http://10.0.0.1/"),
    _kvp("reference-private-172", "http://172.16.0.1/"),
    _kvp("reference-private-192", "http://192.168.1.1/"),
    _kvp("reference-shared-cgnat", "http://100.64.0.1/"),
    _kvp("reference-unspecified", "http://0.0.0.0:8000/", "0.0.0.0 reaches the host itself on Linux"),
    _kvp("reference-multicast", "http://224.0.0.1/"),
    _kvp("reference-ipv6-unique-local", "http://%5Bfd00::1%5D/"),
    _kvp("reference-ipv6-link-local", "http://%5Bfe80::1%5D/"),
    _kvp("reference-https-loopback", "https://127.0.0.1/"),
    _kvp("reference-bad-port", "http://127.0.0.1:99999/", "a port out of range is not a URL"),
    _kvp("reference-file", "file:///etc/passwd"),
    _kvp("reference-ftp", "ftp://127.0.0.1/pub/"),
    _kvp("reference-gopher", "gopher://127.0.0.1:6379/_INFO", "gopher smuggles raw bytes to other services"),
    _kvp("reference-data", "data:text/plain,hello"),
    _kvp("reference-dict", "dict://127.0.0.1:11211/stats"),
    _kvp("reference-no-host", "http:///etc/passwd"),
    _kvp("reference-unresolvable", "http://nonexistent.invalid/data.txt", "the .invalid domain never resolves"),
    _kvp("reference-async-loopback", "http://127.0.0.1/health",
         "an asynchronous request is refused at Execute, before it is submitted", extra=_ASYNC),
    _xml("reference-xml-loopback", "http://127.0.0.1/health"),
    _xml("reference-xml-userinfo-trick", "http://example.org@127.0.0.1/", note="the host is what follows the @"),
    _xml("reference-xml-post", "http://example.org/data", ' method="POST"', "<wps:Body>hello</wps:Body>",
         "no process of the service allows POST for an input; refused before any lookup"),
    _xml("reference-xml-body-reference", "http://example.org/data", ' method="POST"',
         '<wps:BodyReference xlink:href="http://127.0.0.1/health"/>', "the body reference is never fetched"),
]
