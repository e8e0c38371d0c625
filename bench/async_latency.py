#!/usr/bin/env python3
"""Time an asynchronous WPS Execute to ProcessSucceeded, as a client sees it.

    .venv/bin/python bench/async_latency.py [--url http://localhost:5000/wps] [--runs 10]
        [--process sleep] [--inputs delay=0] [--poll 0.1]

Each run posts an asynchronous Execute (storeExecuteResponse=true,
status=true) and polls statusLocation until ProcessSucceeded, the way OWSLib
does. Prints every run and the min/p50/p90/max; exits 1 if a run fails.
Against the demo: ./pwg demo, then run this.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import xml.etree.ElementTree as ET

import requests

NS = {"wps": "http://www.opengis.net/wps/1.0.0"}


def one_run(url: str, process: str, inputs: str, poll: float, timeout: float) -> float:
    start = time.monotonic()
    reply = requests.get(url, params={
        "service": "WPS", "version": "1.0.0", "request": "Execute", "identifier": process,
        "datainputs": inputs, "storeExecuteResponse": "true", "status": "true"}, timeout=timeout)
    reply.raise_for_status()
    location = ET.fromstring(reply.content).get("statusLocation")
    if not location:
        raise RuntimeError(f"no statusLocation in: {reply.text[:300]}")
    while time.monotonic() - start < timeout:
        doc = ET.fromstring(requests.get(location, timeout=timeout).content)
        if doc.find(".//wps:ProcessSucceeded", NS) is not None:
            return time.monotonic() - start
        if doc.find(".//wps:ProcessFailed", NS) is not None:
            raise RuntimeError(f"{process} failed: {ET.tostring(doc, encoding='unicode')[:500]}")
        time.sleep(poll)
    raise RuntimeError(f"{process} did not finish within {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://localhost:5000/wps")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--process", default="sleep")
    parser.add_argument("--inputs", default="delay=0")
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between status polls")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()

    times = []
    for i in range(args.runs):
        try:
            seconds = one_run(args.url, args.process, args.inputs, args.poll, args.timeout)
        except (requests.RequestException, RuntimeError, ET.ParseError) as err:
            print(f"run {i + 1}: FAILED: {err}")
            return 1
        times.append(seconds)
        print(f"run {i + 1}: {seconds:.2f} s")
    times.sort()
    p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
    print(f"{args.process} {args.inputs}: async Execute -> ProcessSucceeded over {len(times)} runs: "
          f"min {times[0]:.2f} s, p50 {statistics.median(times):.2f} s, p90 {p90:.2f} s, max {times[-1]:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
