"""Requests only nginx answers: the front door's own refusals, behind the cluster.

nginx proxies exactly ``/wps`` to the app and serves ``/wpsoutputs/`` from
the shared outputs; everything else, and whatever breaks HTTP itself (a URI
or a header over its limits, a host name the service does not have, a method
a resource does not take), nginx answers with one of the ExceptionReports the
nginx role renders (roles/nginx/README.md, "Errors nginx answers itself").
The app never sees these requests, so they run only against the cluster.
Limits assumed: the role's defaults (a URI of at most 4080 bytes, header
lines of at most 8 kB), and a service named ``localhost`` reached also by IP
address, as in the demo inventory.
"""

from __future__ import annotations

from . import Case

GETCAPABILITIES = "service=WPS&request=GetCapabilities"
# Over nginx_max_uri_length (4080 bytes) with the path and the query's head.
PAD = "a" * 4100


def cluster(name: str, kind: str, status: int, code: str | None = "NoApplicableCode", **fields) -> Case:
    return Case(name, kind, status, code, where="cluster", **fields)


CASES = [
    # Sizes: nginx's 414 and 400, as ExceptionReports, before gunicorn could answer a bare 400.
    cluster("nginx_uri_too_long_getcapabilities", "size", 414, query=f"{GETCAPABILITIES}&pad={PAD}"),
    cluster("nginx_uri_too_long_execute_kvp", "size", 414,
            query=f"service=WPS&version=1.0.0&request=Execute&identifier=wordcount&datainputs=text={PAD}",
            note="a long KVP Execute belongs in a POST body"),
    cluster("nginx_uri_over_header_buffer", "size", 414, query=f"{GETCAPABILITIES}&pad={'a' * 9000}",
            note="longer than nginx's request line buffer: refused while reading the request"),
    cluster("nginx_outputs_path_too_long", "size", 414, path="/wpsoutputs/" + "a" * 9000 + ".xml"),
    cluster("nginx_header_line_too_large", "size", 400, query=GETCAPABILITIES, headers=(("X-Pad", "a" * 9000),)),
    cluster("nginx_cookie_too_large", "size", 400, query=GETCAPABILITIES, headers=(("Cookie", "c=" + "a" * 9000),)),
    # Host names: only the service's own, and IP addresses.
    cluster("nginx_unknown_host", "host", 400, query=GETCAPABILITIES, headers=(("Host", "attacker.example"),),
            note="DNS rebinding: a name the service does not have never reaches the app"),
    cluster("nginx_unknown_host_outputs", "host", 400, path="/wpsoutputs/status.xml",
            headers=(("Host", "attacker.example"),)),
    cluster("nginx_unknown_host_root", "host", 400, path="/", headers=(("Host", "attacker.example:15000"),),
            note="refused, never redirected with the Host in the Location"),
    cluster("nginx_invalid_host", "host", 400, query=GETCAPABILITIES, headers=(("Host", "a b"),)),
    cluster("nginx_ip_host_accepted", "host", 200, None, query=GETCAPABILITIES,
            headers=(("Host", "127.0.0.1:15000"),), note="clients that use the address keep working"),
    # Paths nginx has nothing under.
    cluster("nginx_path_under_wps", "path", 404, path="/wps/hello/extra"),
    cluster("nginx_path_wps_suffix", "path", 404, path="/wps.php", query=GETCAPABILITIES),
    cluster("nginx_path_dotenv", "path", 404, path="/.env"),
    cluster("nginx_path_git_config", "path", 404, path="/.git/config"),
    cluster("nginx_path_server_status", "path", 404, path="/server-status"),
    cluster("nginx_path_nul", "path", 400, path="/wps%00", query=GETCAPABILITIES),
    # The outputs: read-only, unlisted, no hidden files.
    cluster("nginx_outputs_listing", "traversal", 403, path="/wpsoutputs/"),
    cluster("nginx_outputs_hidden_file", "traversal", 404, path="/wpsoutputs/.htaccess"),
    cluster("nginx_outputs_nfs_silly_rename", "traversal", 404, path="/wpsoutputs/.nfs0000000000000001"),
    cluster("nginx_outputs_encoded_hidden", "traversal", 404, path="/wpsoutputs/%2ehidden"),
    cluster("nginx_outputs_post", "method", 405, method="POST", path="/wpsoutputs/status.xml", body=b"x"),
    cluster("nginx_outputs_put", "method", 405, method="PUT", path="/wpsoutputs/evil.html",
            body=b"<script>alert(1)</script>", headers=(("Content-Type", "text/html"),)),
    cluster("nginx_outputs_delete", "method", 405, method="DELETE", path="/wpsoutputs/status.xml"),
    cluster("nginx_trace_outputs", "method", 405, method="TRACE", path="/wpsoutputs/status.xml"),
    # Answered by nginx before the app sees them (the app's own answers are app-only cases).
    cluster("nginx_path_identifier_in_path_nul", "path", 400, path="/wps/hel%00lo",
            query="service=WPS&version=1.0.0&request=DescribeProcess"),
    cluster("nginx_uri_overlong_identifier", "size", 414,
            query="service=WPS&version=1.0.0&request=DescribeProcess&identifier=" + "a" * 5000),
]
