"""The common role's name-resolution check, against this machine's resolver."""

import importlib.util
import socket

from conftest import ROOT

spec = importlib.util.spec_from_file_location("check_names", ROOT / "roles/common/files/check_names.py")
check_names = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_names)


def test_consistent_names_give_no_problem():
    assert check_names.check({"localhost": "127.0.0.1"}, "elsewhere") == []


def test_wrong_address_is_reported_with_both_addresses():
    problems = check_names.check({"localhost": "192.0.2.7"}, "elsewhere")
    assert any("localhost resolves to 127.0.0.1, but localhost has address 192.0.2.7" in p for p in problems)


def test_unresolvable_name_is_reported():
    problems = check_names.check({"no-such-host.invalid": "192.0.2.8"}, "elsewhere")
    assert problems and problems[0].startswith("no-such-host.invalid does not resolve")


def test_own_name_must_resolve_to_own_address():
    me = socket.gethostname()
    problems = check_names.check({me: "192.0.2.9"}, me)
    assert any(p.startswith(f"this host's own name {me} resolves to") for p in problems)
