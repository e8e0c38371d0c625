"""Check that this host resolves every cluster host as Grid Engine needs it.

Usage: check_names.py '{"name": "address", ...}' THIS_HOST_NAME

Prints a JSON list of problems (empty when all is well). Grid Engine compares
host names: every host must resolve every other host's name to the address
that host has, and that address back to the same name; and a host must
resolve its own name to its own address, not to loopback.
"""

import json
import socket
import sys


def check(expected: dict, me: str) -> list:
    problems = []
    for name, address in sorted(expected.items()):
        try:
            found = socket.gethostbyname(name)
        except OSError as err:
            problems.append(f"{name} does not resolve ({err})")
            continue
        if found != address:
            problems.append(f"{name} resolves to {found}, but {name} has address {address}")
        try:
            back = socket.gethostbyaddr(address)[0]
        except OSError as err:
            problems.append(f"{address} ({name}) has no reverse name ({err})")
            continue
        if back != name:
            problems.append(f"{address} resolves back to {back}, not {name}")
    if me in expected:
        own = socket.gethostname()
        try:
            own_address = socket.gethostbyname(own)
        except OSError as err:
            problems.append(f"this host's own name {own} does not resolve ({err})")
        else:
            if own_address != expected[me]:
                problems.append(
                    f"this host's own name {own} resolves to {own_address}, not {expected[me]}"
                )
    return problems


if __name__ == "__main__":
    print(json.dumps(check(json.loads(sys.argv[1]), sys.argv[2])))
