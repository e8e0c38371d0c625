"""HTTP server on a unix socket that answers with what it was asked.

Stands in for gunicorn in the nginx scenario: the answer is a JSON echo of
the method, path, query and headers nginx passed on, and of how many
requests for that same method and path (query included) reached it so far
(``seen``: a request answered from nginx's cache never gets here). Query
parameters let a test play an app that is slow (``sleep=SECONDS``) or
answers an error of its own (``status=CODE``, with ``retry_after=SECONDS``)
or a Cache-Control header of its own (``cache_control=VALUE``), to see what
nginx does with it.
"""

import json
import os
import socketserver
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

SEEN: Counter = Counter()
SEEN_LOCK = threading.Lock()


class Echo(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with SEEN_LOCK:
            SEEN[self.command, self.path] += 1
            seen = SEEN[self.command, self.path]
        query = parse_qs(urlsplit(self.path).query)
        time.sleep(float(query.get("sleep", ["0"])[0]))
        reply = json.dumps(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body_length": len(body),
             "accept": self.headers.get_all("Accept") or [], "seen": seen}
        ).encode()
        self.send_response(int(query.get("status", ["200"])[0]))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        if "retry_after" in query:
            self.send_header("Retry-After", query["retry_after"][0])
        if "cache_control" in query:
            self.send_header("Cache-Control", query["cache_control"][0])
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_DELETE = _answer

    def address_string(self) -> str:
        return "unix"


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


if __name__ == "__main__":
    path = sys.argv[1]
    if os.path.exists(path):
        os.unlink(path)
    with Server(path, Echo) as server:
        os.chmod(path, 0o666)
        server.serve_forever()
