#!/usr/bin/env python3
"""Time an asynchronous WPS Execute to ProcessSucceeded, as a client sees it.

    python3 bench/async_latency.py [--url http://localhost:5000/wps] [--runs 10]
        [--process sleep] [--inputs delay=0] [--poll 0.1] [--connect http://ADDRESS] [--json FILE]

Each run posts an asynchronous Execute (storeExecuteResponse=true,
status=true) and polls statusLocation until ProcessSucceeded, the way OWSLib
does. Prints every run and the min/p50/p90/max; exits 1 if a run fails.
Against the demo: ./pwg demo, then run this (or ./pwg bench, which runs it
from its load generator and beside the original demo's scheduler settings).

--connect sends every request (Execute and status polls) to another address
while keeping the Host of --url: ./pwg bench's load generator reaches the web
host on the demo network, where the service's own address (localhost:5000)
means something else. Needs only Python 3 and requests (Debian's
python3-requests in the load generator).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import requests

NS = {"wps": "http://www.opengis.net/wps/1.0.0"}


class WpsClient:
    """A WPS 1.0.0 client for Execute and status polling, optionally through another address.

    Written on requests rather than OWSLib: the benchmark times the service,
    and must see every 503 and its Retry-After, which OWSLib hides.
    """

    def __init__(self, url: str, connect: str = "", timeout: float = 30) -> None:
        parts = urlsplit(url)
        self.url = url
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.connect = connect.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if self.connect:
            self.session.headers["Host"] = parts.netloc

    def route(self, url: str) -> str:
        """The URL to send: the service's own origin swapped for --connect."""
        if self.connect and url.startswith(self.origin):
            return self.connect + url[len(self.origin):]
        return url

    def execute(self, process: str, inputs: str) -> requests.Response:
        """Post an asynchronous Execute (KVP); the caller reads the status or the refusal."""
        return self.session.get(self.route(self.url), timeout=self.timeout, params={
            "service": "WPS", "version": "1.0.0", "request": "Execute", "identifier": process,
            "datainputs": inputs, "storeExecuteResponse": "true", "status": "true"})

    def status(self, location: str) -> str:
        """'succeeded', 'failed' or '' (not final yet) from the status document at location."""
        reply = self.session.get(self.route(location), timeout=self.timeout)
        reply.raise_for_status()
        doc = ET.fromstring(reply.content)
        if doc.find(".//wps:ProcessSucceeded", NS) is not None:
            return "succeeded"
        if doc.find(".//wps:ProcessFailed", NS) is not None:
            return "failed"
        return ""


def status_location(reply: requests.Response) -> str:
    """The statusLocation of an Execute answer; raises RuntimeError with the answer otherwise."""
    reply.raise_for_status()
    location = ET.fromstring(reply.content).get("statusLocation")
    if not location:
        raise RuntimeError(f"no statusLocation in: {reply.text[:300]}")
    return location


def one_run(client: WpsClient, process: str, inputs: str, poll: float, timeout: float) -> float:
    """Seconds from posting the Execute to the first poll that shows ProcessSucceeded."""
    start = time.monotonic()
    location = status_location(client.execute(process, inputs))
    while time.monotonic() - start < timeout:
        state = client.status(location)
        if state == "succeeded":
            return time.monotonic() - start
        if state == "failed":
            raise RuntimeError(f"{process} failed: see {location}")
        time.sleep(poll)
    raise RuntimeError(f"{process} did not finish within {timeout} s")


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of values (sorted here), as the printed figures use it."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://localhost:5000/wps")
    parser.add_argument("--connect", default="", help="send requests to this origin, keeping --url's Host")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--process", default="sleep")
    parser.add_argument("--inputs", default="delay=0")
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between status polls")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--json", default="", help="also write the figures as JSON to this file ('-': stdout)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    client = WpsClient(args.url, args.connect, timeout=args.timeout)
    times = []
    for i in range(args.runs):
        try:
            seconds = one_run(client, args.process, args.inputs, args.poll, args.timeout)
        except (requests.RequestException, RuntimeError, ET.ParseError) as err:
            print(f"run {i + 1}: FAILED: {err}", file=sys.stderr)
            return 1
        times.append(seconds)
        print(f"run {i + 1}: {seconds:.2f} s", file=sys.stderr if args.json == "-" else sys.stdout)
    figures = {"process": args.process, "inputs": args.inputs, "runs": len(times), "poll_s": args.poll,
               "seconds": [round(t, 3) for t in times], "min_s": round(min(times), 3),
               "p50_s": round(statistics.median(times), 3), "p90_s": round(percentile(times, 0.9), 3),
               "max_s": round(max(times), 3)}
    if args.json == "-":
        print(json.dumps(figures))
    else:
        print(f"{args.process} {args.inputs}: async Execute -> ProcessSucceeded over {len(times)} runs: "
              f"min {figures['min_s']:.2f} s, p50 {figures['p50_s']:.2f} s, p90 {figures['p90_s']:.2f} s, "
              f"max {figures['max_s']:.2f} s")
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump(figures, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
