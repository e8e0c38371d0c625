"""Requests to the scenario's nginx with curl on its container, from a chosen
loopback source address, and what came back: status, headers and body.

Shared by the front-door and discovery-cache tests. 127.0.0.1 is exempt from
the per-client limits in this scenario (inventory/group_vars/all/test.yml);
127.0.0.2 and up are ordinary clients.
"""

from __future__ import annotations

import base64
import json
import shlex
from dataclasses import dataclass

CERT = "/etc/ssl/pywps/wps.test.crt"
CURL = f"curl -sS --cacert {CERT} --resolve wps.test:443:127.0.0.1"
EXEMPT = "127.0.0.1"


@dataclass
class Reply:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        assert values is None or len(values) == 1, (name, values)
        return values[0] if values else None

    @property
    def cache(self) -> str | None:
        """The discovery cache's verdict (X-Cache-Status): HIT, MISS, BYPASS, ..."""
        return self.header("x-cache-status")

    @property
    def echo(self) -> dict:
        """What the stand-in upstream was asked, when it answered."""
        return json.loads(self.body)


def fetch(host, url: str, *args: str, source: str = EXEMPT, before: str = "") -> Reply:
    """One request with curl on the container, from SOURCE; status, headers and body.

    BEFORE is a shell command run just before it, in the same shell.
    """
    options = " ".join(shlex.quote(a) for a in args)
    run = host.run(
        f"{before} d=$(mktemp -d) && {CURL} --interface {source} {options} -D $d/h -o $d/b {shlex.quote(url)}"
        " && cat $d/h && echo '-----' && base64 -w0 $d/b; rm -rf $d"
    )
    assert run.rc == 0, run.stderr
    head, _, body = run.stdout.partition("\n-----\n")
    lines = head.strip().splitlines()
    found: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        found.setdefault(name.strip().lower(), []).append(value.strip())
    return Reply(int(lines[0].split()[1]), found, base64.b64decode(body.strip()))
