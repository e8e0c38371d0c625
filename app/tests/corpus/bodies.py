"""POST bodies: XML oddities (not XML, namespaces, DTDs and entities, depth, structure,
encodings), JSON bodies, and sizes."""

from __future__ import annotations

from . import Case

WPS = 'xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1"'
XLINK = 'xmlns:xlink="http://www.w3.org/1999/xlink"'
XML = (("Content-Type", "application/xml"),)
JSON = (("Content-Type", "application/json"),)


def execute_doc(body: str, identifier: str = "hello", form: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>'
            f'<wps:Execute service="WPS" version="1.0.0" {WPS} {XLINK}>'
            f'<ows:Identifier>{identifier}</ows:Identifier><wps:DataInputs>{body}</wps:DataInputs>{form}'
            f'</wps:Execute>').encode()


def literal_input(identifier: str, value: str) -> str:
    return (f"<wps:Input><ows:Identifier>{identifier}</ows:Identifier>"
            f"<wps:Data><wps:LiteralData>{value}</wps:LiteralData></wps:Data></wps:Input>")


def xml(name: str, body: bytes, status: int = 400, code: str | None = "NoApplicableCode",
        locator: str | None = None, kind: str = "xml", **kw: str) -> Case:
    return Case(name, kind, status, code, locator, method="POST", body=body, headers=XML, **kw)


def json_body(name: str, body: bytes, status: int = 400, code: str | None = "NoApplicableCode",
              locator: str | None = None) -> Case:
    return Case(name, "json", status, code, locator, method="POST", body=body, headers=JSON)


HELLO = literal_input("name", "Friday")
LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
          + f']><wps:GetCapabilities service="WPS" {WPS}><ows:Identifier>&lol9;</ows:Identifier>'
          + "</wps:GetCapabilities>").encode()
DEEP = (f'<wps:Execute service="WPS" version="1.0.0" {WPS}><ows:Identifier>hello</ows:Identifier>'
        + "<x>" * 5000 + "</x>" * 5000 + "</wps:Execute>").encode()

CASES = [
    # -- controls --
    xml("xml_getcapabilities", f'<wps:GetCapabilities service="WPS" {WPS}/>'.encode(), 200, None),
    xml("xml_describeprocess", (f'<wps:DescribeProcess service="WPS" version="1.0.0" {WPS}>'
                                f"<ows:Identifier>hello</ows:Identifier></wps:DescribeProcess>").encode(), 200, None),
    xml("xml_execute_hello", execute_doc(HELLO), 200, None),
    xml("xml_execute_textfile_raw", execute_doc(literal_input("lines", "4"), "textfile",
        '<wps:ResponseForm><wps:RawDataOutput mimeType="text/csv"><ows:Identifier>output</ows:Identifier>'
        "</wps:RawDataOutput></wps:ResponseForm>"), 200, None),
    xml("xml_execute_comment_and_pi", b"<?xml version='1.0'?><!-- a comment --><?pi x?>" + execute_doc(HELLO)[38:],
        200, None),
    # -- not XML, or not safe XML --
    xml("xml_not_xml", b"hello world"),
    xml("xml_empty_body", b"", code="MissingParameterValue", locator="request"),
    xml("xml_truncated", execute_doc(HELLO)[:-20]),
    xml("xml_billion_laughs", LAUGHS, note="a DTD is refused before any entity is expanded"),
    xml("xml_external_entity_file", (f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
                                     f'<wps:DescribeProcess service="WPS" version="1.0.0" {WPS}>'
                                     f"<ows:Identifier>&xxe;</ows:Identifier></wps:DescribeProcess>").encode()),
    xml("xml_external_parameter_entity", (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY % p SYSTEM '
                                          b'"http://169.254.169.254/latest/meta-data/">%p;]><x/>')),
    xml("xml_external_dtd", b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "file:///etc/passwd"><x/>'),
    xml("xml_deep_nesting", DEEP),
    xml("xml_nul_character_reference", execute_doc(literal_input("name", "a&#0;b"))),
    xml("xml_control_character_raw", execute_doc(literal_input("name", "a\x01b"))),
    xml("xml_invalid_utf8", execute_doc(literal_input("name", "x")).replace(b"x<", b"\xff\xfe<"), kind="encoding"),
    xml("xml_unknown_encoding_declaration", b'<?xml version="1.0" encoding="klingon"?>' + execute_doc(HELLO)[38:],
        kind="encoding"),
    xml("xml_utf16_declared_utf8_sent", b'<?xml version="1.0" encoding="UTF-16"?>' + execute_doc(HELLO)[38:],
        kind="encoding"),
    xml("xml_json_sent_as_xml", b'{"identifier": "hello"}'),
    # -- not a WPS request --
    xml("xml_no_namespace", b'<Execute service="WPS" version="1.0.0"><Identifier>hello</Identifier></Execute>',
        code="InvalidParameterValue", locator="request"),
    xml("xml_foreign_namespace", b'<x:Execute xmlns:x="http://example.org/x"><x:Identifier>hello</x:Identifier>'
        b"</x:Execute>", code="InvalidParameterValue", locator="request"),
    xml("xml_wrong_root", f'<wps:Frobnicate service="WPS" {WPS}/>'.encode(), code="InvalidParameterValue",
        locator="request"),
    xml("xml_ows_root", f'<ows:Identifier {WPS}>hello</ows:Identifier>'.encode(), code="InvalidParameterValue",
        locator="request"),
    xml("xml_html_body", b"<html><body><script>alert(1)</script></body></html>", code="InvalidParameterValue",
        locator="request"),
    # -- Execute structure --
    xml("xml_execute_without_identifier", (f'<wps:Execute service="WPS" version="1.0.0" {WPS}>'
                                           f"<wps:DataInputs>{HELLO}</wps:DataInputs></wps:Execute>").encode(),
        code="MissingParameterValue", locator="Identifier"),
    xml("xml_input_without_identifier", execute_doc("<wps:Input><wps:Data><wps:LiteralData>x</wps:LiteralData>"
                                                    "</wps:Data></wps:Input>"),
        code="MissingParameterValue", locator="Identifier"),
    xml("xml_input_without_data", execute_doc("<wps:Input><ows:Identifier>name</ows:Identifier></wps:Input>"),
        code="InvalidParameterValue", locator="name"),
    xml("xml_reference_with_header", execute_doc(
        '<wps:Input><ows:Identifier>text</ows:Identifier><wps:Reference xlink:href="http://example.org/a.txt">'
        '<wps:Header key="Authorization" value="Bearer x"/></wps:Reference></wps:Input>', "wordcount"),
        code="InvalidParameterValue", locator="text"),
    xml("xml_unknown_input", execute_doc(HELLO + literal_input("nope", "1")), code="InvalidParameterValue",
        locator="nope"),
    xml("xml_integer_inf", execute_doc(literal_input("integer", "inf"), "literals"), code="InvalidParameterValue",
        locator="integer"),
    xml("xml_datetime_overflow", execute_doc(literal_input("datetime", "99999999-12-31T23:59:59Z"), "literals"),
        code="InvalidParameterValue", locator="datetime"),
    xml("xml_datatype_string", execute_doc('<wps:Input><ows:Identifier>integer</ows:Identifier><wps:Data>'
                                           '<wps:LiteralData datatype="string">5</wps:LiteralData></wps:Data>'
                                           "</wps:Input>", "literals"),
        code="InvalidParameterValue", locator="integer"),
    xml("xml_rawdataoutput_unknown", execute_doc(HELLO, form="<wps:ResponseForm><wps:RawDataOutput>"
                                                 "<ows:Identifier>nope</ows:Identifier></wps:RawDataOutput>"
                                                 "</wps:ResponseForm>"),
        code="InvalidParameterValue", locator="nope"),
    xml("xml_responsedocument_unknown", execute_doc(HELLO, form="<wps:ResponseForm><wps:ResponseDocument>"
                                                    "<wps:Output><ows:Identifier>nope</ows:Identifier></wps:Output>"
                                                    "</wps:ResponseDocument></wps:ResponseForm>"),
        code="InvalidParameterValue", locator="nope"),
    xml("xml_output_without_identifier", execute_doc(HELLO, form="<wps:ResponseForm><wps:ResponseDocument>"
                                                     "<wps:Output/></wps:ResponseDocument></wps:ResponseForm>"),
        code="MissingParameterValue", locator="Identifier"),
    xml("xml_unknown_process", execute_doc(HELLO, "nope"), code="InvalidParameterValue", locator="Identifier"),
    xml("xml_wrong_version", execute_doc(HELLO).replace(b'version="1.0.0"', b'version="0.4"'),
        code="InvalidParameterValue", locator="version"),
    # -- JSON --
    json_body("json_array", b'["hello", "world"]'),
    json_body("json_string", b'"hello"'),
    json_body("json_garbage", b"{not json"),
    json_body("json_nan", b'{"identifier": "hello", "inputs": {"name": NaN}}'),
    json_body("json_inputs_not_object", b'{"identifier": "hello", "inputs": 5}', code="InvalidParameterValue",
              locator="inputs"),
    json_body("json_identifier_not_string", b'{"identifier": ["hello"]}', code="InvalidParameterValue",
              locator="identifier"),
    json_body("json_unknown_process", b'{"identifier": "nope", "inputs": {}}', code="InvalidParameterValue",
              locator="Identifier"),
    json_body("json_nested_input", b'{"identifier": "hello", "inputs": {"name": [[1, 2]]}}',
              code="InvalidParameterValue", locator="name"),
    json_body("json_xml_sent_as_json", execute_doc(HELLO)),
    json_body("json_execute_hello", b'{"identifier": "hello", "inputs": {"name": "Friday"}}', 200, None),
    # -- sizes (the test configuration's maxrequestsize is 3mb) --
    Case("size_body_over_maxrequestsize", "size", 413, "FileSizeExceeded", method="POST",
         body=execute_doc(literal_input("name", "x" * (3 * 1024 * 1024 + 10))), headers=XML, where="app"),
    Case("size_inline_input_over_maxsingleinputsize", "size", 400, "FileSizeExceeded", "text", method="POST",
         body=execute_doc('<wps:Input><ows:Identifier>text</ows:Identifier><wps:Data><wps:ComplexData '
                          'mimeType="text/plain">' + "word " * 300_000 + "</wps:ComplexData></wps:Data></wps:Input>",
                          "wordcount"), headers=XML, where="app"),
]
