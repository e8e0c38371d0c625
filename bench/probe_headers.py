#!/usr/bin/env python3
"""GET a URL a few times and print, as JSON, the statuses and any cache status header.

    python3 bench/probe_headers.py URL [--times 2] [--header 'Cache-Control: no-cache'] [--host HOST]

./pwg bench runs it before timing discovery: it primes nginx's cache and
tells whether the answers came from it (a header such as X-Cache-Status:
HIT, MISS, BYPASS), so the cached and uncached figures say what they measured.
"""

from __future__ import annotations

import argparse
import json
import sys

import requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--times", type=int, default=2)
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    parser.add_argument("--host", default="", help="Host header (the URL names another address)")
    args = parser.parse_args()
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    if args.host:
        headers["Host"] = args.host
    answers = []
    with requests.Session() as session:
        for _ in range(args.times):
            reply = session.get(args.url, headers=headers, timeout=30)
            cache = {k: v for k, v in reply.headers.items()
                     if "cache-status" in k.lower() or k.lower() in ("x-cache", "age")}
            answers.append({"status": reply.status_code, "bytes": len(reply.content), "cache": cache})
    print(json.dumps(answers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
