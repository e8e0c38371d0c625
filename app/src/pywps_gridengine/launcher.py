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
  the response is a :class:`~.compat.GridEngineExecuteResponse` that knows
  its SGE job id (``JOB_ID``, set by Grid Engine), moves the job-table row to
  Started/Succeeded/Failed, and beats a heartbeat while the process runs, so
  the reconciler can tell a lost host from a long job.

Exit status: 0 when the job reached a final state (also ProcessFailed) or runs
under another Grid Engine job (the reconciler submitted it again), 2 when
it could not be loaded (also a dump that does not name one of the app's own
processes as that process's class: :func:`~.compat.dump_process`), 3 when the reconciler had already failed it, 4 when
the database stayed unreachable past ``[gridengine] db_retry_timeout`` (the
status document then says so). The launcher rides out shorter database
outages: at its start it waits for the database, progress updates are
dropped while it is away, and the final state is retried.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .config import AppConfig, Settings, load

if TYPE_CHECKING:
    from .jobs import Usage

LOGGER = logging.getLogger("PYWPS")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pywps-gridengine-launcher", description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--config", help="pywps.cfg to use (default: $PYWPS_CFG)")
    parser.add_argument("dump", help="job dump written by the web host")
    return parser.parse_args(argv)


class Heartbeat:
    """Background thread updating the job's heartbeat in the job table.

    A heartbeat the row refuses means the job was ended elsewhere (the
    reconciler failed it): ``on_fenced`` is called, by default ending this
    launcher at once, so a job nobody waits for any more stops using its slot.
    """

    def __init__(self, store: Any, uuid: str, interval: float,
                 on_fenced: Callable[[], None] | None = None) -> None:
        self._store = store
        self._uuid = uuid
        self._interval = interval
        self._on_fenced = on_fenced or _exit_fenced
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if not self._store.heartbeat(self._uuid):
                    if not self._stop.is_set():
                        self._on_fenced()
                    return
            except Exception:  # a database hiccup must not kill the job
                LOGGER.warning("heartbeat for job %s failed", self._uuid, exc_info=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _exit_fenced() -> None:
    LOGGER.error("the job was ended elsewhere (its row is final): stopping its launcher")
    print("pywps-gridengine-launcher: the job was ended elsewhere; stopping", file=sys.stderr, flush=True)
    logging.shutdown()
    os._exit(3)  # from the heartbeat thread: the process, not just this thread; the row and document stay


def _superseded(row_job_id: str | None, own_job_id: str | None) -> bool:
    """Whether the job row names another Grid Engine job than this launcher's (``JOB_ID``).

    The reconciler submits a job Grid Engine lost before its launcher started
    again under a new id (:meth:`.JobStore.resubmitted`); should the old job
    start after all, its launcher is not the job's any more. A row without an
    id (the submission's acknowledgement was lost) is this launcher's.
    """
    return bool(own_job_id) and row_job_id is not None and str(row_job_id) != str(own_job_id)


def _row_job_id(store: Any, uuid: str) -> str | None:
    """The Grid Engine job id the row names now; None when it cannot be read."""
    try:
        record = store.get(uuid)
    except Exception:
        LOGGER.warning("could not read the row of job %s", uuid, exc_info=True)
        return None
    return record.sge_job_id if record is not None else None


def _exit_superseded(uuid: str, own_job_id: str | None, row_job_id: str | None) -> int:
    """A launcher of a job submitted again under another id: it runs nothing, writes nothing, and ends cleanly."""
    LOGGER.warning("WPS job %s was submitted again as Grid Engine job %s: this launcher (Grid Engine job %s) "
                   "does not run it", uuid, row_job_id, own_job_id)
    print(f"pywps-gridengine-launcher: job {uuid} runs as Grid Engine job {row_job_id} now, not as {own_job_id}; "
          "nothing to do", file=sys.stderr)
    return 0


def usage_meter(host: str) -> Callable[[], Usage]:
    """What this launcher and its children used since now, as the job row keeps it."""
    from .jobs import Usage

    start = time.monotonic()

    def usage() -> Usage:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
        peak = max(own.ru_maxrss, children.ru_maxrss) * 1024  # KiB on Linux; resident, not virtual
        return Usage(exec_host=host, wallclock=round(time.monotonic() - start, 3), cpu=round(cpu, 3),
                     peak_memory=float(peak))

    return usage


def _setup_logging(config: AppConfig) -> None:
    LOGGER.setLevel(getattr(logging, config.log_level.upper(), logging.INFO))
    if not LOGGER.handlers:
        handler: logging.Handler
        handler = logging.FileHandler(config.log_file) if config.log_file else logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(config.log_format))
        LOGGER.addHandler(handler)


def run(dump_path: str, config: AppConfig, sge_job_id: str | None = None, hostname: str | None = None) -> int:
    """Run the job in ``dump_path`` with the loaded configuration."""
    from sqlalchemy.exc import DBAPIError

    from .compat import DumpRefused, JobFenced, ResultNotRecorded, restore_job, run_process, write_failed_document
    from .jobs import JobStore

    try:
        process, wps_request, wps_response = restore_job(dump_path, config)
    except DumpRefused as e:  # not one of the app's processes: nothing of it was imported or run
        LOGGER.error("refused job dump %s: %s", dump_path, e)
        print(f"pywps-gridengine-launcher: could not load job dump {dump_path}: refused: {e}", file=sys.stderr)
        return 2
    except Exception:
        LOGGER.exception("could not load job dump %s", dump_path)
        print(f"pywps-gridengine-launcher: could not load job dump {dump_path}", file=sys.stderr)
        return 2

    settings = config.gridengine or Settings()
    uuid = str(process.uuid)
    deadline = time.monotonic() + settings.db_retry_timeout
    while True:  # a job that starts while the database restarts waits for it
        try:
            store = JobStore.for_config(config)
            record = store.get(uuid)
            break
        except DBAPIError as e:
            if time.monotonic() >= deadline:
                raise
            LOGGER.warning("database unreachable at the start of job %s, retrying: %s", uuid,
                           str(e).splitlines()[0])
            time.sleep(5)
    wps_response.db_retry_timeout = settings.db_retry_timeout
    wps_response.usage = usage_meter(hostname or socket.gethostname())
    wps_response.job_store = store if record is not None else None
    if record is not None and _superseded(record.sge_job_id, sge_job_id):
        return _exit_superseded(uuid, sge_job_id, record.sge_job_id)
    if record is not None and record.sge_job_id is None and sge_job_id:
        # The web host lost the acknowledgement of the submission: say which job this is.
        store.set_job_id(uuid, sge_job_id)
    wps_response.sge_job_id = sge_job_id
    wps_response.exec_host = hostname or socket.gethostname()

    if config.bindir:
        os.environ["PATH"] = f"{config.bindir}:{os.environ.get('PATH', '')}"
    if process.workdir:
        os.chdir(process.workdir)
    try:
        def fenced() -> None:
            if not wps_response.final_recorded:  # the row is final because someone else ended the job
                _exit_fenced()

        with Heartbeat(store, uuid, settings.heartbeat_interval, on_fenced=fenced):
            run_process(process, wps_request, wps_response)
    except JobFenced as e:
        current = _row_job_id(store, uuid)
        if _superseded(current, sge_job_id):  # resubmitted while this launcher was starting
            return _exit_superseded(uuid, sge_job_id, current)
        LOGGER.error("%s", e)
        print(f"pywps-gridengine-launcher: {e}", file=sys.stderr)
        return 3
    except ResultNotRecorded as e:
        LOGGER.error("job %s: %s", uuid, e)
        print(f"pywps-gridengine-launcher: {e}", file=sys.stderr)
        # The last resort: the row cannot be asked, the client must not poll forever.
        write_failed_document(config, process.identifier, uuid, process.workdir, sge_job_id,
                              f"The job could not record its result: {e}.")
        return 4
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Loads the configuration before anything of PyWPS is imported (its database
    # module reads the table prefix at import time).
    config = load(args.config)
    _setup_logging(config)
    return run(args.dump, config, sge_job_id=os.environ.get("JOB_ID"))


if __name__ == "__main__":
    sys.exit(main())
