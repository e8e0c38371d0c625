"""nginx in front of the app: TLS, redirect, proxy, outputs, limits."""

import json

CERT = "/etc/ssl/pywps/wps.test.crt"
HTTPS = f"curl -sS --cacert {CERT} --resolve wps.test:443:127.0.0.1"


def status(host, cmd: str) -> str:
    return host.check_output(f"{cmd} -o /dev/null -w '%{{http_code}}'")


def headers(host, url: str) -> dict[str, str]:
    out = host.check_output(f"{HTTPS} -D - -o /dev/null {url}")
    pairs = (line.split(":", 1) for line in out.splitlines()[1:] if ":" in line)
    return {k.strip().lower(): v.strip() for k, v in pairs}


def test_plain_http_is_redirected_to_https(host):
    out = host.check_output(
        "curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' "
        "'http://127.0.0.1/wps?service=WPS&request=GetCapabilities' -H 'Host: wps.test'"
    )
    assert out == "301 https://wps.test/wps?service=WPS&request=GetCapabilities"


def test_certificate_is_valid_for_the_server_name(host):
    # --cacert with the self-signed certificate: curl verifies chain and name.
    assert status(host, f"{HTTPS} https://wps.test/wpsoutputs/status.xml") == "200"
    subject = host.check_output(f"openssl x509 -in {CERT} -noout -subject")
    assert "CN = wps.test" in subject


def test_old_tls_is_refused(host):
    run = host.run(f"{HTTPS} --tls-max 1.1 https://wps.test/wpsoutputs/status.xml")
    assert run.rc == 35, run.stderr  # SSL connect error: protocol version refused
    assert "protocol version" in run.stderr


def test_wps_is_proxied_with_forwarded_headers(host):
    reply = json.loads(host.check_output(f"{HTTPS} 'https://wps.test/wps?service=WPS&request=GetCapabilities'"))
    assert reply["method"] == "GET"
    assert reply["path"] == "/wps?service=WPS&request=GetCapabilities"
    assert reply["headers"]["Host"] == "wps.test"
    assert reply["headers"]["X-Forwarded-Proto"] == "https"


def test_root_points_at_getcapabilities(host):
    out = host.check_output(f"{HTTPS} -o /dev/null -w '%{{http_code}} %{{redirect_url}}' https://wps.test/")
    assert out == "302 https://wps.test/wps?service=WPS&request=GetCapabilities"
    # The Location itself is relative: nothing of the request's Host in it.
    assert headers(host, "https://wps.test/")["location"] == "/wps?service=WPS&request=GetCapabilities"


def test_health_is_proxied_to_the_app(host):
    reply = json.loads(host.check_output(f"{HTTPS} https://wps.test/health"))
    assert reply["path"] == "/health"


def test_execute_post_within_limit_passes_and_over_limit_is_413(host):
    host.check_output("head -c 900000 /dev/zero > /tmp/small && head -c 1100000 /dev/zero > /tmp/big")
    reply = json.loads(host.check_output(f"{HTTPS} --data-binary @/tmp/small https://wps.test/wps"))
    assert (reply["method"], reply["body_length"]) == ("POST", 900000)
    assert status(host, f"{HTTPS} --data-binary @/tmp/big https://wps.test/wps") == "413"


def test_outputs_have_their_content_types(host):
    xml = headers(host, "https://wps.test/wpsoutputs/status.xml")
    assert xml["content-type"] == "text/xml"
    assert xml["cache-control"] == "no-cache"
    assert "max-age" in xml["strict-transport-security"]
    assert headers(host, "https://wps.test/wpsoutputs/result.nc")["content-type"] == "application/x-netcdf"
    assert headers(host, "https://wps.test/wpsoutputs/result.json")["content-type"] == "application/json"
    assert "cache-control" not in headers(host, "https://wps.test/wpsoutputs/result.json")


def test_outputs_are_read_only_and_not_listed(host):
    assert status(host, f"{HTTPS} -X PUT --data x https://wps.test/wpsoutputs/new.xml") == "405"
    assert status(host, f"{HTTPS} -X DELETE https://wps.test/wpsoutputs/status.xml") == "405"
    assert status(host, f"{HTTPS} https://wps.test/wpsoutputs/") == "403"
    assert status(host, f"{HTTPS} https://wps.test/wpsoutputs/job1/") == "403"
    assert host.file("/srv/wps/outputs/status.xml").exists


def test_app_down_gives_502_not_a_hang(host):
    host.check_output("systemctl stop pwg-test-upstream")
    try:
        assert status(host, f"{HTTPS} --max-time 10 https://wps.test/health") == "502"
    finally:
        host.check_output("systemctl start pwg-test-upstream")
