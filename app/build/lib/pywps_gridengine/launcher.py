"""``pywps-gridengine-launcher``: runs one dumped WPS job on a Grid Engine exec host.

Usage (as Grid Engine runs it)::

    pywps-gridengine-launcher --config /etc/pywps/pywps.cfg /srv/wps/workdir/pywps_process_x/job_y.dump

Replaces PyWPS 4.8's ``joblauncher``, which

* rebuilds the process from its class but never re-applies the client's output
  choices (asReference, mimeType): every output comes back with the process's
  defaults — here ``setup_outputs_from_wps_request`` is applied again;
* builds the process twice (once for the response, once to run), so status
  and clean-up work on different objects — here there is one;
* writes status documents in place and keeps no link to the batch job — here
  the response is a :class:`~.response.GridEngineExecuteResponse` that knows
  its SGE job id (``JOB_ID``, set by Grid Engine), moves the job-table row to
  Started/Succeeded/Failed, and beats a heartbeat while the process runs, so
  the reconciler can tell a lost host from a long job.

Exit status: 0 when the job reached a final state (also ProcessFailed), 2 when
it could not be loaded, 3 when the reconciler had already failed it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import threading
from collections.abc import Sequence
from typing import Any

LOGGER = logging.getLogger("PYWPS")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pywps-gridengine-launcher", description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--config", help="pywps.cfg to use (default: $PYWPS_CFG)")
    parser.add_argument("dump", help="job dump written by the web host")
    return parser.parse_args(argv)


def load_job(dump_path: str) -> tuple[Any, Any, Any]:
    """Rebuild (process, wps_request, wps_response) from a job dump, output choices included."""
    from pywps import Process, WPSRequest

    from .response import GridEngineExecuteResponse

    with open(dump_path, encoding="utf-8") as handle:
        value = json.load(handle)
    process = Process.from_json(value["process"])
    wps_request = WPSRequest()
    wps_request.restore_json(json.loads(value["wps_request"]))
    process._setup_status_storage()
    # The fix: the client's asReference/mimeType choices, lost by PyWPS's joblauncher.
    process.setup_outputs_from_wps_request(wps_request)
    wps_response = GridEngineExecuteResponse(wps_request, uuid=process.uuid, process=process)
    wps_response.store_status_file = True
    return process, wps_request, wps_response


class Heartbeat:
    """Background thread updating the job's heartbeat in the job table."""

    def __init__(self, store: Any, uuid: str, interval: float) -> None:
        self._store = store
        self._uuid = uuid
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if not self._store.heartbeat(self._uuid):
                    return  # the job is final (or gone): nothing more to report
            except Exception:  # a database hiccup must not kill the job
                LOGGER.warning("heartbeat for job %s failed", self._uuid, exc_info=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _setup_logging() -> None:
    from pywps import configuration as config

    level = config.get_config_value("logging", "level") or "INFO"
    LOGGER.setLevel(getattr(logging, str(level).upper(), logging.INFO))
    if not LOGGER.handlers:
        handler: logging.Handler
        logfile = config.get_config_value("logging", "file")
        handler = logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(str(config.get_config_value("logging", "format")), ))
        LOGGER.addHandler(handler)


def run(dump_path: str, sge_job_id: str | None = None, hostname: str | None = None) -> int:
    """Run the job in ``dump_path`` with the already loaded PyWPS configuration."""
    from pywps import configuration as config

    from .config import load_settings
    from .jobs import JobStore
    from .response import JobFenced

    try:
        process, wps_request, wps_response = load_job(dump_path)
    except Exception:
        LOGGER.exception("could not load job dump %s", dump_path)
        print(f"pywps-gridengine-launcher: could not load job dump {dump_path}", file=sys.stderr)
        return 2

    settings = load_settings()
    store = JobStore.from_pywps()
    uuid = str(process.uuid)
    wps_response.job_store = store if store.get(uuid) is not None else None
    wps_response.sge_job_id = sge_job_id
    wps_response.exec_host = hostname or socket.gethostname()

    bindir = str(config.get_config_value("processing", "path") or "")
    if bindir:
        os.environ["PATH"] = f"{bindir}:{os.environ.get('PATH', '')}"
    if process.workdir:
        os.chdir(process.workdir)
    try:
        with Heartbeat(store, uuid, settings.heartbeat_interval):
            process._run_process(wps_request, wps_response)
    except JobFenced as e:
        LOGGER.error("%s", e)
        print(f"pywps-gridengine-launcher: {e}", file=sys.stderr)
        return 3
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.config:
        # Before PyWPS is imported: pywps.dblog reads its table prefix at import time.
        os.environ["PYWPS_CFG"] = os.path.abspath(args.config)
    from pywps import configuration as config

    config.load_configuration(os.environ.get("PYWPS_CFG") or None)
    _setup_logging()
    return run(args.dump, sge_job_id=os.environ.get("JOB_ID"))


if __name__ == "__main__":
    sys.exit(main())
