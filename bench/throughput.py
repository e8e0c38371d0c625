#!/usr/bin/env python3
"""Job throughput: a burst of trivial asynchronous jobs from concurrent clients.

    python3 bench/throughput.py [--url http://localhost:5000/wps] [--jobs 200] [--clients 16]
        [--window 2] [--connect http://ADDRESS] [--json FILE]

Each client (a thread with its own HTTP session) takes jobs from the common
pool of --jobs, keeps up to --window of them in flight (0: all it can get),
polls their status documents, and submits the next as one ends. A 503 is a
refusal (nginx's limit or the app's cap on active jobs per client,
ServerBusy): the client puts the job back, counts the refusal and, like a real
client, submits nothing more before the Retry-After it was given, while it
keeps polling the jobs it has. Throughput is the jobs that succeeded per
minute from the first submission to the last final state a client saw.

Every job accepted must end ProcessSucceeded: the figures count the failed
(ProcessFailed), the lost (accepted, no final state by --timeout) and the
errors (an Execute answered neither with a status document nor a 503).
Bounded: --jobs submissions, --timeout seconds in all. Exits 1 unless every
job succeeded.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import xml.etree.ElementTree as ET

import requests
from async_latency import WpsClient, status_location


class Pool:
    """The jobs still to submit, shared by the clients, and the tallies they report."""

    def __init__(self, jobs: int) -> None:
        self.lock = threading.Lock()
        self.remaining = jobs
        self.tally = {"accepted": 0, "succeeded": 0, "failed": 0, "lost": 0, "refused": 0, "errors": 0}
        self.first_submit = float("inf")
        self.last_final = 0.0
        self.refusal_reasons: dict[str, int] = {}
        self.error_samples: list[str] = []

    def take(self) -> bool:
        with self.lock:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
            return True

    def give_back(self) -> None:
        with self.lock:
            self.remaining += 1

    def empty(self) -> bool:
        with self.lock:
            return self.remaining <= 0

    def count(self, key: str, when: float | None = None) -> None:
        with self.lock:
            self.tally[key] += 1
            if key in ("succeeded", "failed") and when is not None:
                self.last_final = max(self.last_final, when)

    def submitted(self, when: float) -> None:
        with self.lock:
            self.first_submit = min(self.first_submit, when)

    def refused(self, reply: requests.Response) -> None:
        code = "nginx" if b"ServerBusy" not in reply.content else "app ServerBusy"
        with self.lock:
            self.tally["refused"] += 1
            self.refusal_reasons[code] = self.refusal_reasons.get(code, 0) + 1

    def error(self, text: str) -> None:
        with self.lock:
            self.tally["errors"] += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(text[:300])


def retry_after(reply: requests.Response, default: float = 5.0) -> float:
    """Seconds the service asked the client to wait (Retry-After in seconds), or a default."""
    try:
        return max(0.0, float(reply.headers.get("Retry-After", "")))
    except ValueError:
        return default


def client_loop(client: WpsClient, pool: Pool, window: int, process: str, inputs: str, poll: float,
                deadline: float) -> None:
    """One client: submit within its window and its Retry-After, poll its jobs to their end."""
    inflight: list[str] = []
    backoff_until = 0.0
    while time.monotonic() < deadline:
        now = time.monotonic()
        if (window == 0 or len(inflight) < window) and now >= backoff_until and pool.take():
            pool.submitted(now)
            try:
                reply = client.execute(process, inputs)
                if reply.status_code == 503:
                    pool.give_back()
                    pool.refused(reply)
                    backoff_until = time.monotonic() + retry_after(reply)
                else:
                    inflight.append(status_location(reply))
                    pool.count("accepted")
            except (requests.RequestException, RuntimeError, ET.ParseError) as err:
                pool.error(f"Execute: {err}")
            continue
        if not inflight:
            if pool.empty():
                return
            time.sleep(max(0.0, min(poll, backoff_until - time.monotonic())) or poll)
            continue
        for location in list(inflight):
            try:
                state = client.status(location)
            except (requests.RequestException, ET.ParseError):
                continue  # polled again; a job that never answers ends up lost
            if state:
                inflight.remove(location)
                pool.count(state, time.monotonic())
        time.sleep(poll)
    for _ in inflight:
        pool.count("lost")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://localhost:5000/wps")
    parser.add_argument("--connect", default="", help="send requests to this origin, keeping --url's Host")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--window", type=int, default=2, help="jobs each client keeps in flight (0: no bound)")
    parser.add_argument("--process", default="sleep")
    parser.add_argument("--inputs", default="delay=0")
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between a client's status polls")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the whole burst")
    parser.add_argument("--json", default="", help="write the figures as JSON to this file ('-': stdout)")
    args = parser.parse_args()
    if args.jobs < 1 or args.clients < 1 or args.window < 0:
        parser.error("--jobs and --clients must be at least 1, --window at least 0")

    pool = Pool(args.jobs)
    deadline = time.monotonic() + args.timeout
    threads = [threading.Thread(target=client_loop, daemon=True, args=(
        WpsClient(args.url, args.connect, timeout=30), pool, args.window, args.process, args.inputs,
        args.poll, deadline)) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 60)
    tally = dict(pool.tally)
    tally["not_submitted"] = pool.remaining
    span = pool.last_final - pool.first_submit if pool.last_final else 0.0
    figures = {"jobs": args.jobs, "clients": args.clients, "window": args.window, "process": args.process,
               "inputs": args.inputs, **tally, "span_s": round(span, 3),
               "jobs_per_min": round(tally["succeeded"] / span * 60, 1) if span > 0 else 0.0,
               "refusals": pool.refusal_reasons, "error_samples": pool.error_samples}
    text = json.dumps(figures)
    if args.json == "-":
        print(text)
    else:
        print(f"{args.jobs} x {args.process} {args.inputs} from {args.clients} clients: "
              f"{figures['jobs_per_min']} jobs/min over {span:.1f} s; " +
              ", ".join(f"{k} {v}" for k, v in tally.items()))
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                handle.write(text)
    return 0 if tally["succeeded"] == args.jobs else 1


if __name__ == "__main__":
    sys.exit(main())
