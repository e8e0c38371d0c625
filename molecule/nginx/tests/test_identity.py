"""Who the client is, as nginx tells the app: basic auth and an authenticating proxy's header.

The scenario converges with nginx_identity none (test_front_door: a client's
X-Remote-User never reaches the app). Here the role runs again with basic,
then header, then none again; the stand-in app echoes the headers it got.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from nginxclient import fetch

INVENTORY = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
PLAYBOOK = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "nginx", "identity.yml")
URL = "https://wps.test/ogcapi/jobs"


def converge(mode: str) -> None:
    run = subprocess.run(["ansible-playbook", "-i", INVENTORY, PLAYBOOK, "-e", json.dumps({"nginx_identity": mode})],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


def user_seen(reply) -> str | None:
    headers = {k.lower(): v for k, v in json.loads(reply.body)["headers"].items()}
    return headers.get("x-remote-user")


@pytest.fixture(scope="module")
def modes():
    yield converge
    converge("none")


def test_basic_auth_names_the_user_and_refuses_the_others(host, modes):
    modes("basic")
    reply = fetch(host, URL)
    assert reply.status == 401 and "Basic" in (reply.header("www-authenticate") or "")
    assert b"NoApplicableCode" in reply.body  # nginx's own error: an ExceptionReport
    assert fetch(host, URL, "-u", "alice:rabbit").status == 401
    reply = fetch(host, URL, "-u", "alice:wonderland", "-H", "X-Remote-User: root")
    assert reply.status == 200 and user_seen(reply) == "alice"
    reply = fetch(host, "https://wps.test/wps", "-u", "alice:wonderland")
    assert reply.status == 200 and user_seen(reply) == "alice"
    assert fetch(host, "https://wps.test/wps").status == 401


def test_an_authenticating_proxys_header_names_the_user(host, modes):
    modes("header")
    reply = fetch(host, URL, "-H", "X-Forwarded-User: bob", "-H", "X-Remote-User: root")
    assert reply.status == 200 and user_seen(reply) == "bob"
    assert user_seen(fetch(host, URL)) is None


def test_back_to_no_identity(host, modes):
    modes("none")
    reply = fetch(host, URL, "-H", "X-Remote-User: root", "-H", "X-Forwarded-User: bob")
    assert reply.status == 200 and user_seen(reply) is None
