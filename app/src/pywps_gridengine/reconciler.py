"""``pywps-gridengine-reconciler``: fails WPS jobs that Grid Engine lost.

PyWPS 4.8 never notices a job that was ``qdel``'ed, killed by a limit, lost
with its exec host, or whose launcher crashed: the status document stays at
ProcessAccepted/ProcessStarted forever. One reconciler pass looks at every
job the job table has as Accepted/Started, asks a :class:`StateSource` what
Grid Engine knows about it, and turns the ones that cannot finish any more into
ProcessFailed with a reason, in the status document, in PyWPS's requests table
and in the job table.

Decision table (:func:`decide`), for an active job:

==========================================  ===========================================
Grid Engine says                            outcome
==========================================  ===========================================
queued / held by user / suspended           untouched
running, heartbeat fresh                    untouched
running, launcher heartbeat too old         failed: exec host lost; job deleted (qdel)
running, launcher never reported the start  after ``submit_timeout`` s: deleted and submitted again
                                            (at most ``max_resubmits`` times, else failed as lost)
error state (Eqw)                           failed with Grid Engine's reason (qstat -j); deleted
finished (accounting record)                failed with the reason read from accounting
unknown, no accounting yet                  untouched for ``gone_grace`` s, then failed
no SGE job id after ``submit_timeout`` s    failed: submission never completed
==========================================  ===========================================

A job Grid Engine lost before its launcher started (the exec host died
after dispatch, or its execd was restarted as the job arrived and never got
it) has run nothing: :meth:`Reconciler.resubmit` deletes the old Grid Engine
job and submits the job's dump again, and the row moves to the new job id in
a compare-and-set that holds only while the row is still Accepted under the
old id. A launcher of the old job that starts after all is fenced off by the
job id (:meth:`.JobStore.record`), so the process never runs twice. A job
that started is never submitted again.

"Finished" only matters while the row is still active: a launcher that
finished normally has already moved its row to Succeeded/Failed. Every
failure is a compare-and-set on the job row, so a launcher finishing at the
same moment wins or loses cleanly, never both.

Run it every few seconds: ``pywps-gridengine-reconciler --loop`` (or ``--once``
from a systemd timer). With the defaults a lost job is failed within
``interval + gone_grace`` (accounting known: ``interval``) seconds, and a
lost exec host within ``heartbeat_timeout + interval``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import enum
import logging
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree  # parses only qstat's own output
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.exc import DBAPIError as DatabaseError

from . import metrics
from .config import AppConfig, load
from .jobs import ACCEPTED, DISMISSED, FAILED, STARTED, JobRecord, JobStore, Usage
from .paths import status_document

if TYPE_CHECKING:
    from .scheduler import JobSpec, Submitter

LOGGER = logging.getLogger("PYWPS")


class SgeState(enum.Enum):
    QUEUED = "queued"
    HELD = "held"            # user/operator hold: will run when released
    RUNNING = "running"
    SUSPENDED = "suspended"
    ERROR = "error"          # Eqw: Grid Engine could not start it and will not retry
    FINISHED = "finished"    # has an accounting record
    UNKNOWN = "unknown"      # neither in the queue nor (yet) in accounting


@dataclass(frozen=True)
class JobInfo:
    """What the batch system knows about one job."""

    state: SgeState
    exit_status: int | None = None
    failed: int | None = None
    failed_reason: str | None = None
    deleted_by: str | None = None
    wallclock: float | None = None
    h_rt: float | None = None
    maxvmem: str | None = None
    hostname: str | None = None
    reason: str | None = None  # free text, e.g. the error of an Eqw job
    cpu: float | None = None
    h_vmem: str | None = None

    def usage(self) -> Usage:
        """The figures accounting gives, as the job row keeps them."""
        return Usage(exec_host=self.hostname, exit_status=self.exit_status, wallclock=self.wallclock,
                     cpu=self.cpu, peak_memory=memory_bytes(self.maxvmem))


_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def memory_bytes(text: str | None) -> float | None:
    """Bytes of a Grid Engine memory figure ('512M', '1.234G', '2048'); None if it is not one."""
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*$", text or "", re.IGNORECASE)
    return float(match.group(1)) * _UNITS[match.group(2).upper()] if match else None


class StateSource(Protocol):
    def job_info(self, sge_job_id: str) -> JobInfo: ...

    def terminate(self, sge_job_id: str) -> None:
        """Best effort removal of a job the reconciler gave up on."""
        ...


# -- the decision -----------------------------------------------------------------

def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# Exit statuses of pywps-gridengine-launcher (launcher.py) that say more than "crashed".
LAUNCHER_LOAD_FAILED = 2
LAUNCHER_RESULT_NOT_RECORDED = 4


def finished_verdict(info: JobInfo, job: JobRecord) -> tuple[str, str]:
    """(cause, reason) of a job Grid Engine finished without the launcher reporting.

    The reason is readable text for the client; the cause a short label of the
    same branch, for the metrics (``metrics.VERDICTS``).
    """
    ref = f"Grid Engine job {job.sge_job_id}"
    where = f" on {info.hostname}" if info.hostname else ""
    ran = f" after {info.wallclock:.0f} s" if info.wallclock is not None else ""
    if info.deleted_by:
        return "deleted", f"{ref} was deleted (qdel) by {info.deleted_by}{where}{ran}, before it finished."
    status = info.exit_status
    if status is not None and status > 128:
        number = status - 128
        sig = _signal_name(number)
        if info.h_rt is not None and info.wallclock is not None and info.wallclock >= info.h_rt - 1:
            return "wallclock_limit", (f"{ref} was killed ({sig}){where}{ran}: it exceeded its wall-clock limit "
                                       f"h_rt of {info.h_rt:.0f} s.")
        limit, peak = memory_bytes(info.h_vmem), memory_bytes(info.maxvmem)
        if limit and peak and peak >= 0.9 * limit:
            return "memory_limit", (f"{ref} was killed ({sig}){where}{ran}: it exceeded its memory limit h_vmem of "
                                    f"{info.h_vmem} (peak {info.maxvmem}).")
        peak_text = f", peak memory {info.maxvmem}" if info.maxvmem else ""
        return "killed", f"{ref} was killed by signal {number} ({sig}){where}{ran}{peak_text}."
    if info.failed not in (None, 0, 100):
        text = f": {info.failed_reason}" if info.failed_reason else ""
        return "grid_engine_failure", f"{ref} could not run{where} (Grid Engine failure {info.failed}{text})."
    if status == LAUNCHER_LOAD_FAILED:
        return "load_failed", f"The job launcher of {ref} could not load the job{where}; see its error log."
    if status == LAUNCHER_RESULT_NOT_RECORDED:
        return "result_not_recorded", (f"{ref} ran{where}, but the database stayed unreachable, so its result "
                                       "could not be recorded; see its error log.")
    if status not in (None, 0):
        return "exit_status", (f"{ref} exited with status {status}{where}{ran} without reporting a result; "
                               "see its error log.")
    return "ended_unreported", (f"{ref} ended{where} without the job reporting a result (its launcher crashed or "
                                "was killed).")


@dataclass(frozen=True)
class Decision:
    fail: bool
    reason: str = ""
    terminate: bool = False
    mark_gone: bool = False
    usage: Usage | None = None
    resubmit: bool = False  # lost before it started: submit it again if allowed, else fail with ``reason``
    cause: str = ""  # a short label of the reason, for the metrics (metrics.VERDICTS)


KEEP = Decision(fail=False)


def _age(since: dt.datetime | None, now: dt.datetime) -> float:
    return (now - since).total_seconds() if since else 0.0


def decide(job: JobRecord, info: JobInfo | None, now: dt.datetime, *, heartbeat_timeout: float,
           gone_grace: float, submit_timeout: float, db_reachable_since: dt.datetime | None = None,
           running_since: dt.datetime | None = None) -> Decision:
    """What to do with one active job, given what Grid Engine says (``None``: no SGE job id).

    ``db_reachable_since``: since when the reconciler has reached the database
    without a break. A heartbeat is only judged stale once the database has
    been reachable for the whole timeout: after an outage every launcher gets
    a full ``heartbeat_timeout`` to beat again.

    ``running_since``: since when the reconciler has seen Grid Engine show the
    job running while its launcher has not yet reported the start. A host lost
    between dispatch and the launcher's first write leaves the job in that
    state for as long as the qmaster waits for the host. A launcher has
    ``submit_timeout`` to report the start, not the shorter
    ``heartbeat_timeout``: on a loaded exec host, or waiting for a database it
    cannot reach yet, a healthy launcher can take tens of seconds to start,
    and a late verdict on this rare loss costs less than failing a healthy job.
    Such a job has run nothing: the decision is to submit it again
    (``resubmit``), and to fail it only when that is not possible.
    """
    if info is None:
        if _age(job.created_at, now) >= submit_timeout:
            return Decision(True, f"The job was never handed to Grid Engine (no job id after {submit_timeout:.0f} s).",
                            cause="never_submitted")
        return KEEP
    ref = f"Grid Engine job {job.sge_job_id}"
    if info.state in (SgeState.QUEUED, SgeState.HELD, SgeState.SUSPENDED):
        return KEEP
    if info.state == SgeState.RUNNING and job.state != STARTED:
        since = running_since
        if since is not None and db_reachable_since is not None:
            since = max(since, db_reachable_since)
        if since is not None and _age(since, now) >= submit_timeout:
            return Decision(True, f"Lost contact with {ref}: Grid Engine has shown it running for "
                                  f"{_age(since, now):.0f} s but its launcher never reported the start "
                                  f"(exec host down, or the launcher could not start).", terminate=True,
                            resubmit=True, cause="start_not_reported")
        return KEEP
    if info.state == SgeState.RUNNING:
        last = job.heartbeat_at
        if last is not None and db_reachable_since is not None:
            last = max(last, db_reachable_since)
        if job.state == STARTED and last is not None and _age(last, now) >= heartbeat_timeout:
            host = job.exec_host or info.hostname or "its exec host"
            return Decision(True, f"Lost contact with {ref} on {host}: no heartbeat for "
                                  f"{_age(last, now):.0f} s (host down or launcher hung).", terminate=True,
                            cause="heartbeat_lost")
        return KEEP
    if info.state == SgeState.ERROR:
        # Grid Engine's own reason (qstat -j, :func:`error_state_reason`), else where to look for it.
        why = (info.reason or f"it is in error state; see qstat -j {job.sge_job_id}").rstrip(". ")
        return Decision(True, f"Grid Engine could not start the job ({ref}, error state): {why}.", terminate=True,
                        cause="error_state")
    if info.state == SgeState.FINISHED:
        cause, reason = finished_verdict(info, job)
        return Decision(True, reason, usage=info.usage(), cause=cause)
    # UNKNOWN: deleted while queued, or accounting not written yet.
    if job.gone_since is None:
        return Decision(False, mark_gone=True) if gone_grace > 0 else Decision(
            True, f"{ref} is no longer known to Grid Engine (deleted, or lost with its host).", cause="gone")
    if _age(job.gone_since, now) >= gone_grace:
        return Decision(True, f"{ref} is no longer known to Grid Engine (deleted, or lost with its host).",
                        cause="gone")
    return KEEP


# -- applying it --------------------------------------------------------------------

FailWriter = Callable[[JobRecord, str], None]


def failed_document_writer(config: AppConfig) -> FailWriter:
    """Writes the ProcessFailed status document of a job the reconciler failed."""
    from .compat import write_failed_document

    def write(job: JobRecord, reason: str) -> None:
        write_failed_document(config, job.identifier, job.uuid, job.workdir, job.sge_job_id, reason)

    return write


@dataclass
class PassResult:
    checked: int = 0
    failed: int = 0
    resubmitted: int = 0  # jobs lost before they started, submitted again
    repaired: int = 0
    stopped: int = 0  # Grid Engine jobs of dismissed WPS jobs that still ran, deleted
    unrepairable: int = 0  # succeeded documents that disagree with their row and were not kept whole
    skipped: str = ""   # why the pass did nothing: not the leader, database unreachable


class DocumentFiles:
    """The status documents in ``outputpath`` as the repair pass of succeeded jobs reads and restores them.

    A document's digest is read again only when the file changed (another
    inode, size or modification time), so a pass over an hour of succeeded
    jobs costs one ``stat`` per job on the shared tree, not one read.
    """

    def __init__(self, outputpath: str) -> None:
        self.outputpath = outputpath
        self._seen: dict[str, tuple[tuple[int, int, int], str]] = {}

    def path(self, uuid: str) -> str:
        return status_document(self.outputpath, uuid)

    def digest(self, uuid: str) -> str | None:
        """SHA-256 of the document's bytes; None when it is missing or unreadable."""
        import hashlib

        path = self.path(uuid)
        try:
            info = os.stat(path)
            key = (info.st_ino, info.st_size, info.st_mtime_ns)
            seen = self._seen.get(uuid)
            if seen is not None and seen[0] == key:
                return seen[1]
            with open(path, "rb") as handle:
                value = hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError:
            self._seen.pop(uuid, None)
            return None
        self._seen[uuid] = (key, value)
        return value

    def restore(self, uuid: str, document: str) -> None:
        from .status import atomic_write

        atomic_write(self.path(uuid), document)

    def forget(self, keep: set[str]) -> None:
        """Drop what is remembered of documents not in ``keep`` (jobs out of the repair window)."""
        for uuid in set(self._seen) - keep:
            del self._seen[uuid]


DocumentState = Callable[[JobRecord], "str | None"]


def status_document_state(config: AppConfig) -> DocumentState:
    """The WPS status element (``ProcessFailed`` ...) of a job's status document; None if unreadable."""
    from lxml import etree

    def state(job: JobRecord) -> str | None:
        path = status_document(config.outputpath, job.uuid)
        try:
            doc = etree.parse(path, etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
        except (OSError, etree.XMLSyntaxError):
            return None
        for element in doc.iter("{*}Status"):
            for child in element:
                return etree.QName(child).localname
        return None

    return state


class Reconciler:
    def __init__(self, store: JobStore, source: StateSource, *, heartbeat_timeout: float = 30.0,
                 gone_grace: float = 15.0, submit_timeout: float = 120.0,
                 write_failed: FailWriter, document_state: DocumentState | None = None,
                 repair_window: float = 3600.0, clock: Callable[[], dt.datetime] | None = None,
                 documents: DocumentFiles | None = None, config: AppConfig | None = None,
                 submitter: Submitter | None = None, max_resubmits: int = 0) -> None:
        self.store = store
        # Resubmission of jobs lost before they started (:meth:`resubmit`): the job spec is built from
        # ``config`` as the web host builds it, and handed to ``submitter`` (Grid Engine, or a test's).
        self.config = config
        self.submitter = submitter
        self.max_resubmits = max_resubmits
        # uuid -> the Grid Engine job this reconciler deleted to submit the job again, while the
        # move of the row to the new job did not happen (database error): the next pass tries again
        # instead of taking the deletion for the job's end.
        self.deleted_for_resubmit: dict[str, str] = {}
        self.document_state = document_state
        self.documents = documents
        self._reported: set[str] = set()  # unrepairable documents already reported (once each)
        self.repair_window = repair_window
        self.source = source
        self.heartbeat_timeout = heartbeat_timeout
        self.gone_grace = gone_grace
        self.submit_timeout = submit_timeout
        self.write_failed = write_failed
        # Ages are judged on the database's clock, the one every stamp was written with.
        self.clock = clock or store.db_now
        self.db_reachable_since: dt.datetime | None = None
        # uuid -> when this reconciler first saw Grid Engine run the job before its launcher
        # reported the start. Kept in memory only: a restarted reconciler starts the wait
        # again, which can only delay a verdict, never fail a healthy job.
        self.running_unstarted: dict[str, dt.datetime] = {}

    def run_once(self) -> PassResult:
        """One pass. A database error skips the pass; the next one starts a new grace period."""
        try:
            now = self.clock()
            if self.db_reachable_since is None:
                self.db_reachable_since = now
            jobs = self.store.active()
        except DatabaseError as e:
            if self.db_reachable_since is not None:
                LOGGER.warning("database unreachable, reconciler pass skipped: %s", str(e).splitlines()[0])
            self.db_reachable_since = None
            return PassResult(skipped="database unreachable")
        result = PassResult()
        active = {job.uuid for job in jobs}
        for uuid in set(self.running_unstarted) - active:
            del self.running_unstarted[uuid]
        for uuid in set(self.deleted_for_resubmit) - active:
            del self.deleted_for_resubmit[uuid]
        for job in jobs:
            result.checked += 1
            try:
                outcome = self._reconcile(job)
                if outcome == FAILED:
                    result.failed += 1
                elif outcome == RESUBMITTED:
                    result.resubmitted += 1
            except Exception:
                LOGGER.exception("reconciling WPS job %s (SGE job %s) failed", job.uuid, job.sge_job_id)
        result.stopped = self.stop_dismissed()
        if self.document_state is not None:
            result.repaired = self.repair()
        if self.documents is not None:
            repaired, result.unrepairable = self.repair_succeeded()
            result.repaired += repaired
        return result

    #: What Grid Engine says of a job that still holds (or may take) a slot.
    HOLDING = (SgeState.QUEUED, SgeState.HELD, SgeState.RUNNING, SgeState.SUSPENDED, SgeState.ERROR)

    def stop_dismissed(self) -> int:
        """Delete the Grid Engine job of every recently dismissed job that Grid Engine still has.

        A dismiss (:mod:`.jobcontrol`) moves the row first, then deletes the
        job; when the deletion failed (qmaster away, the web worker killed in
        between) the row says Dismissed while the job holds its slot. Such a
        job's launcher is fenced off by the row, and is deleted here. Jobs
        dismissed more than ``repair_window`` seconds ago are left alone.
        """
        since = self.clock() - dt.timedelta(seconds=self.repair_window)
        stopped = 0
        for job in self.store.finished_since([DISMISSED], since):
            if not job.sge_job_id:
                continue
            try:
                if self.source.job_info(job.sge_job_id).state not in self.HOLDING:
                    continue
            except Exception:
                LOGGER.warning("could not ask Grid Engine about job %s of dismissed WPS job %s", job.sge_job_id,
                               job.uuid, exc_info=True)
                continue
            LOGGER.warning("Grid Engine job %s of dismissed WPS job %s still runs: deleting it", job.sge_job_id,
                           job.uuid)
            self._delete(job.sge_job_id)
            metrics.verdict("stopped", "dismissed")
            stopped += 1
        return stopped

    def repair(self) -> int:
        """Rewrite the status document of every recently failed job whose document does not say so.

        The row decides: a document write that failed after the row was
        claimed (a full or unreachable shared tree, a crash in between) is
        retried here until the document says ProcessFailed. Jobs that failed
        more than ``repair_window`` seconds ago are left alone. Succeeded jobs:
        :meth:`repair_succeeded`.
        """
        since = self.clock() - dt.timedelta(seconds=self.repair_window)
        repaired = 0
        for job in self.store.finished_since([FAILED, DISMISSED], since):
            try:
                if self.document_state(job) == "ProcessFailed":  # a dismissed job's too (WPS 1.0 has no such state)
                    continue
                self.write_failed(job, job.message or "The job failed.")
                metrics.verdict("repaired", "failed_document")
                repaired += 1
                LOGGER.warning("rewrote the status document of failed WPS job %s", job.uuid)
            except Exception:
                LOGGER.exception("could not repair the status document of WPS job %s", job.uuid)
        return repaired

    def repair_succeeded(self) -> tuple[int, int]:
        """Restore the status document of every recently succeeded job that disagrees with its row.

        (restored, unrepairable). A Succeeded row can have another document:
        the launcher writes the document inside the transaction that makes the
        row Succeeded (:meth:`.JobStore.record`), but when the database goes
        away during the COMMIT, the commit may have landed while the launcher
        saw an error; it retries for ``db_retry_timeout`` and, the database
        still away, writes ProcessFailed ("could not record its result") as
        its last resort, over a row that says Succeeded. A document lost or
        damaged on the shared tree is the other way. The succeeded document
        holds the outputs, which the row does not, so it cannot be rebuilt
        from the row: its digest and text are kept beside the row in the same
        transaction, and this pass compares each document with that digest
        and writes the kept text back. A document too large to keep whole
        (:data:`.jobs.KEEP_DOCUMENT_BYTES`) that disagrees is reported (logged
        once, counted), not rewritten.
        """
        assert self.documents is not None
        since = self.clock() - dt.timedelta(seconds=self.repair_window)
        restored = unrepairable = 0
        kept = self.store.succeeded_documents_since(since)
        self.documents.forget({entry.uuid for entry in kept})
        self._reported &= {entry.uuid for entry in kept}
        for entry in kept:
            try:
                if self.documents.digest(entry.uuid) == entry.sha256:
                    continue
                text = self.store.kept_document(entry.uuid) if entry.kept else None
                if text is None:
                    unrepairable += 1
                    if entry.uuid not in self._reported:
                        self._reported.add(entry.uuid)
                        LOGGER.error("the status document of succeeded WPS job %s (%s) disagrees with its row and "
                                     "cannot be restored: it was too large (%d bytes) to keep", entry.uuid,
                                     self.documents.path(entry.uuid), entry.size)
                    continue
                self.documents.restore(entry.uuid, text)
                metrics.verdict("repaired", "succeeded_document")
                restored += 1
                LOGGER.warning("restored the status document of succeeded WPS job %s", entry.uuid)
            except Exception:
                LOGGER.exception("could not repair the status document of WPS job %s", entry.uuid)
        return restored, unrepairable

    def _reconcile(self, job: JobRecord) -> str:
        """What became of ``job`` in this pass: FAILED, RESUBMITTED or "" (left as it is)."""
        now = self.clock()
        deleted = self.deleted_for_resubmit.get(job.uuid)
        if deleted is not None and (deleted != job.sge_job_id or job.state != ACCEPTED):
            del self.deleted_for_resubmit[job.uuid]
            deleted = None
        if deleted is not None:
            # Its Grid Engine job is gone because this reconciler deleted it to submit the job
            # again, and moving the row failed: submit it again now, do not judge the deletion.
            self.running_unstarted.pop(job.uuid, None)
            decision = Decision(True, f"Lost contact with Grid Engine job {job.sge_job_id}: its launcher never "
                                      "reported the start (exec host down, or the launcher could not start).",
                                resubmit=True, cause="start_not_reported")
        else:
            info = self.source.job_info(job.sge_job_id) if job.sge_job_id else None
            running_since = None
            if info is not None and info.state == SgeState.RUNNING and job.state != STARTED:
                running_since = self.running_unstarted.setdefault(job.uuid, now)
            else:
                self.running_unstarted.pop(job.uuid, None)
            decision = decide(job, info, now, heartbeat_timeout=self.heartbeat_timeout,
                              gone_grace=self.gone_grace, submit_timeout=self.submit_timeout,
                              db_reachable_since=self.db_reachable_since, running_since=running_since)
            if decision.mark_gone:
                self.store.mark_gone(job.uuid, now)
            elif info is not None and info.state != SgeState.UNKNOWN and job.gone_since is not None:
                self.store.clear_gone(job.uuid)
        if not decision.fail:
            return ""
        reason, terminate = decision.reason, decision.terminate
        if decision.resubmit:
            done, why_not = self.resubmit(job, now)
            if done:
                metrics.verdict("resubmitted", decision.cause)
                return RESUBMITTED
            if not why_not:  # the job moved on meanwhile (its launcher started): nothing to fail
                return ""
            reason = f"{reason} It was not run again: {why_not}."
            terminate = terminate and job.uuid not in self.deleted_for_resubmit
        # Claim the row first (PyWPS's requests row follows in the same
        # transaction): if the launcher finished meanwhile, it wins.
        if not self.store.transition(job.uuid, FAILED, reason, usage=decision.usage, now=now):
            return ""
        self.deleted_for_resubmit.pop(job.uuid, None)
        LOGGER.warning("WPS job %s (%s) failed by reconciler: %s", job.uuid, job.identifier, reason)
        if terminate and job.sge_job_id:
            self._delete(job.sge_job_id)
        metrics.verdict("failed", decision.cause)
        self.write_failed(job, reason)
        return FAILED

    def _delete(self, sge_job_id: str) -> None:
        """Best-effort ``qdel``: a job Grid Engine no longer has is fine, any other error only logged."""
        try:
            self.source.terminate(sge_job_id)
        except Exception:
            LOGGER.warning("could not delete Grid Engine job %s", sge_job_id, exc_info=True)

    def resubmit(self, job: JobRecord, now: dt.datetime) -> tuple[bool, str]:
        """Submit a job Grid Engine lost before its launcher started again.

        (True, ""): submitted again; (False, why): not possible, the job is to
        be failed saying why; (False, ""): the job moved on meanwhile.

        Safe because such a job has run nothing: the launcher moves the row to
        Started before the process runs, and the row is still Accepted. In
        order: the old Grid Engine job is deleted (it must not start late; if
        it does, its launcher is fenced off by the job id anyway); the job's
        dump, which the web host wrote on the shared tree, must still be
        there; the job spec is built from it as the web host builds it
        (:func:`.scheduler.build_job_spec`) and submitted; then the row moves
        to the new job in a compare-and-set that holds only while it is still
        Accepted under the old id (:meth:`.JobStore.resubmitted`), with the
        Accepted status document written under its lock. When that move loses
        (the old launcher started after all, or another reconciler was first)
        the new Grid Engine job is deleted and the job is left to the row's
        new owner.
        """
        done = job.resubmits or 0
        settings = self.config.gridengine if self.config is not None else None
        if self.max_resubmits <= 0:
            return False, "submitting lost jobs again is turned off ([gridengine] max_resubmits = 0)"
        if done >= self.max_resubmits:
            return False, (f"it was submitted again {done} time{'s' if done != 1 else ''} already, the most "
                           f"allowed ([gridengine] max_resubmits = {self.max_resubmits})")
        if settings is None or self.config is None or self.submitter is None or not job.sge_job_id:
            return False, "this reconciler cannot submit jobs (no Grid Engine settings or submitter)"
        old = job.sge_job_id
        # Asked before the deletion, while Grid Engine still has the job.
        lost_on = self._exec_host(old)
        self._delete(old)
        self.deleted_for_resubmit[job.uuid] = old
        self.running_unstarted.pop(job.uuid, None)
        from .scheduler import client_cause

        dump, why_not = job_dump(job.workdir)
        if dump is None:
            return False, why_not
        try:
            spec = self._job_spec(job, dump)
        except Exception as e:
            LOGGER.warning("could not rebuild WPS job %s from %s", job.uuid, dump, exc_info=True)
            return False, f"its job could not be rebuilt from its dump ({client_cause(e)})"
        if lost_on:
            spec = avoiding(spec, lost_on)
        try:
            new = self.submitter.submit(spec)
        except Exception as e:
            LOGGER.warning("could not submit WPS job %s again", job.uuid, exc_info=True)
            return False, f"Grid Engine did not take it again ({client_cause(e)})"
        where = f" on {lost_on}" if lost_on else ""
        message = f"Resubmitted as Grid Engine job {new}: Grid Engine job {old} was lost{where} before it started"
        config = self.config

        def write_document() -> None:
            from .compat import write_accepted_document

            write_accepted_document(config, dump, new, message)

        try:
            moved = self.store.resubmitted(job.uuid, old, new, message, job_name=spec.job_name,
                                           native_specification=spec.native_specification, now=now,
                                           then=write_document)
        except Exception:
            # The row still names the old job: the next pass submits it again (deleted_for_resubmit).
            self._delete(new)
            raise
        self.deleted_for_resubmit.pop(job.uuid, None)
        if not moved:
            LOGGER.warning("WPS job %s moved on before its resubmission as Grid Engine job %s was recorded "
                           "(its launcher started, or another reconciler resubmitted it): deleting that job",
                           job.uuid, new)
            self._delete(new)
            return False, ""
        LOGGER.warning("WPS job %s (%s): %s (resubmission %d of at most %d)", job.uuid, job.identifier, message,
                       done + 1, self.max_resubmits)
        return True, ""

    def _exec_host(self, sge_job_id: str) -> str | None:
        """Where Grid Engine dispatched the job, when the state source can say (a stand-in may not)."""
        ask = getattr(self.source, "exec_host", None)
        try:
            return ask(sge_job_id) if ask is not None else None
        except Exception:
            LOGGER.warning("could not ask Grid Engine where job %s runs", sge_job_id, exc_info=True)
            return None

    def _job_spec(self, job: JobRecord, dump: str) -> JobSpec:
        """The job template of ``job``, built from its dump as the web host built it."""
        from .compat import restore_job
        from .scheduler import build_job_spec

        assert self.config is not None and self.config.gridengine is not None
        # The same check as the launcher's (compat.dump_process), and the dump must name the row's process.
        process, _, _ = restore_job(dump, self.config, identifier=job.identifier)
        return build_job_spec(uuid=job.uuid, identifier=job.identifier, workdir=str(job.workdir), dump_filename=dump,
                              declared_resources=getattr(process, "gridengine_resources", None),
                              settings=self.config.gridengine, environ=os.environ)


RESUBMITTED = "resubmitted"

_HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*\Z")


def avoiding(spec: JobSpec, host: str) -> JobSpec:
    """``spec`` with a soft request to run anywhere but ``host``, the exec host that lost the job.

    Grid Engine goes on offering a host that died to jobs until it has not
    heard from it for ``max_unheard`` (5 minutes by default): without this the
    job submitted again can be dispatched to the same dead host and lost again.
    Soft (``-soft``, sge_types(1)'s ``!`` host expression): a cluster whose
    only free host is that one still runs the job there, rather than never.
    The request comes last, so no option of the spec is made soft with it.
    """
    if not _HOST_NAME.match(host):
        return spec
    native = f"{spec.native_specification} -soft -l hostname=!{host}".strip()
    return dataclasses.replace(spec, native_specification=native)


def job_dump(workdir: str | None) -> tuple[str | None, str]:
    """(path, "") of the job dump in a job's work directory, or (None, why there is none to use).

    The web host writes one dump per job, ``job_<random>.dump``, in the job's
    own work directory (PyWPS's ``Job.dump``, a ``mkstemp`` name the job row
    does not record). A missing directory or dump means the job cannot be run
    again (the clean-up, or an operator, removed it); a directory that cannot
    be read for another reason (the shared tree is unavailable) raises, so
    the pass leaves the job for the next one.
    """
    if not workdir:
        return None, "its work directory is not recorded"
    try:
        with os.scandir(workdir) as entries:
            dumps = sorted(entry.path for entry in entries
                           if entry.name.startswith("job_") and entry.name.endswith(".dump") and entry.is_file())
    except (FileNotFoundError, NotADirectoryError):
        return None, "its work directory is gone"
    if not dumps:
        return None, "its job dump is gone from its work directory"
    if len(dumps) > 1:
        return None, f"its work directory holds {len(dumps)} job dumps, not one"
    return dumps[0], ""


# -- the real Grid Engine state source --------------------------------------------------

def _seconds(value: str) -> float | None:
    value = value.strip()
    match = re.match(r"^(\d+(?:\.\d+)?)s?$", value)
    if match:
        return float(match.group(1))
    parts = value.split(":")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        h, m, s = (int(p) for p in parts)
        return float(h * 3600 + m * 60 + s)
    return None


def parse_qacct(text: str) -> dict[str, str]:
    """Fields of the last record of ``qacct -j <id>`` output (a job restarted has several)."""
    records = qacct_records(text)
    return records[-1] if records else {}


def qacct_records(text: str) -> list[dict[str, str]]:
    """Every record of ``qacct -j`` output, field -> value (records are separated by ===== lines)."""
    records: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("====="):
            if current:
                records.append(current)
            current = {}
            continue
        parts = line.split(None, 1)
        if parts:
            current[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    if current:
        records.append(current)
    return records


def _h_rt_of(category: str) -> float | None:
    match = re.search(r"h_rt=([0-9:]+)", category)
    return _seconds(match.group(1)) if match else None


def _h_vmem_of(category: str) -> str | None:
    match = re.search(r"h_vmem=([0-9.]+[KkMmGgTt]?)", category)
    return match.group(1).upper() if match else None


def info_from_qacct(fields: Mapping[str, str]) -> JobInfo:
    def leading_int(value: str | None) -> int | None:
        match = re.match(r"^\s*(-?\d+)", value or "")
        return int(match.group(1)) if match else None

    failed_raw = fields.get("failed", "")
    deleted_by = fields.get("deleted_by", "").strip()
    wallclock = fields.get("ru_wallclock") or fields.get("wallclock") or ""
    return JobInfo(
        state=SgeState.FINISHED,
        exit_status=leading_int(fields.get("exit_status")),
        failed=leading_int(failed_raw),
        failed_reason=failed_raw.split(":", 1)[1].strip() if ":" in failed_raw else None,
        deleted_by=deleted_by if deleted_by and deleted_by.upper() != "NONE" else None,
        wallclock=_seconds(wallclock) if wallclock else None,
        h_rt=_h_rt_of(fields.get("category", "")),
        maxvmem=fields.get("maxvmem") or None,
        hostname=fields.get("hostname") or None,
        cpu=_seconds(fields.get("cpu", "")) if fields.get("cpu") else None,
        h_vmem=_h_vmem_of(fields.get("category", "")),
    )


# Who deleted a job: Grid Engine 8.1's accounting has no such field, its
# reporting file (reporting_params joblog=true) has a job_log "deleted" event
# naming the user and host of the qdel. Events by Grid Engine's own daemons
# ("execution daemon", "scheduler", "master") follow any deletion; they are
# not the deleter.
_DAEMONS = {"execution daemon", "scheduler", "master", "qmaster"}
REPORTING_TAIL = 16 * 2**20


def deleted_by(reporting_file: str, sge_job_id: str, tail: int = REPORTING_TAIL) -> str | None:
    """``user@host`` of the qdel of a job, from the last ``tail`` bytes of Grid Engine's reporting file.

    A record: ``time:job_log:event_time:event:job_number:task_number:pe_taskid:state:user:host:...``
    (reporting(5)). Only the file's end is read: a job is reconciled within
    seconds of its end, while the file grows with every job of the cluster.
    """
    try:
        with open(reporting_file, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - tail))
            data = handle.read().decode("utf-8", "replace")
    except OSError as e:
        LOGGER.warning("cannot read Grid Engine's reporting file %s: %s", reporting_file, e)
        return None
    job = str(sge_job_id)
    for line in data.splitlines():
        fields = line.split(":")
        if (len(fields) > 9 and fields[1] == "job_log" and fields[3] == "deleted" and fields[4] == job
                and fields[8] not in _DAEMONS):
            return f"{fields[8]}@{fields[9]}"
    return None


# Why Grid Engine put a job in error state (Eqw): ``qstat -j N`` prints one line per task,
#   error reason    1:      07/01/2026 12:00:00 [1000:1234]: error: can't chdir to /x: No such file or directory
# (task number, time, [uid:pid] of the execd's shepherd, then the message; some releases leave out
# "error:" and append the job's credentials, " KRB5CCNAME=none uid=... gid=..."). No library reads
# qstat's text output; its -xml form carries the same message, but a regular expression over one
# kind of line is smaller than walking that schema, and the text form is what operators compare with.
_ERROR_REASON = re.compile(r"^\s*error[ _]reason\s*(?:\d+\s*:)?\s*(?P<text>.*)$", re.IGNORECASE)
_REASON_STAMP = re.compile(r"^\d{1,2}/\d{1,2}/\d{2,4}\s+\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\s*")
_REASON_PROCESS = re.compile(r"^\[[^\]]*\]:?\s*")
_REASON_CREDENTIALS = re.compile(r"\s+KRB5CCNAME=.*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
ERROR_REASON_LENGTH = 300


def dispatched_host(qstat_xml: str, sge_job_id: str) -> str | None:
    """The host job ``sge_job_id`` runs on, from ``qstat -xml -s r``; None when the list does not show it.

    Each running job is a ``job_list`` element with its ``JB_job_number`` and
    its queue instance ``queue_name`` (``all.q@exec1``); a parallel job's
    master queue comes first. The text is qstat's own, on this host.
    """
    try:
        root = ElementTree.fromstring(qstat_xml)
    except ElementTree.ParseError:
        return None
    for entry in root.iter("job_list"):
        if (entry.findtext("JB_job_number") or "").strip() == str(sge_job_id):
            _, _, host = (entry.findtext("queue_name") or "").strip().partition("@")
            return host if _HOST_NAME.match(host) else None
    return None


def error_state_reason(qstat_text: str) -> str | None:
    """Grid Engine's reason for a job's error state, from ``qstat -j N``; None when it gives none.

    The time and the shepherd's ``[uid:pid]`` are dropped, as are the word
    "error:" and appended credentials: what stays is what went wrong
    ("can't chdir to /x: No such file or directory"). Several tasks failing
    alike give it once; different reasons are joined with "; ". Control
    characters are removed and the result is at most ``ERROR_REASON_LENGTH``
    characters, as it goes into a status document.
    """
    reasons: list[str] = []
    for line in qstat_text.splitlines():
        match = _ERROR_REASON.match(line)
        if not match:
            continue
        text = _CONTROL.sub(" ", match.group("text"))
        text = _REASON_PROCESS.sub("", _REASON_STAMP.sub("", text.strip()))
        text = _REASON_CREDENTIALS.sub("", text)
        text = re.sub(r"^error:\s*", "", text, flags=re.IGNORECASE)
        text = " ".join(text.split()).rstrip(". ")
        if text and text not in reasons:
            reasons.append(text)
    if not reasons:
        return None
    joined = "; ".join(reasons)
    return joined if len(joined) <= ERROR_REASON_LENGTH else joined[:ERROR_REASON_LENGTH - 3].rstrip() + "..."


class GridEngineStateSource:
    """DRMAA ``jobStatus`` for jobs Grid Engine still holds, ``qacct -j`` for finished ones.

    A DRMAA session only knows the exit status of jobs it submitted itself;
    the reconciler's session did not submit any, so finished jobs are read from
    the accounting file (``qacct``), which the qmaster writes with a delay.
    """

    #: Seconds a ``qstat -j`` may take (a qmaster that does not answer must not stall the pass).
    QSTAT_TIMEOUT = 15.0

    def __init__(self, qacct: str = "qacct", accounting_file: str = "", reporting_file: str = "",
                 qstat: str = "qstat") -> None:
        import drmaa  # loads libdrmaa

        self._drmaa = drmaa
        self._session = drmaa.Session()
        self._session.initialize()
        self._qacct = qacct
        self._qstat_command = qstat
        self._accounting_file = accounting_file
        self._reporting_file = reporting_file
        self._warned_no_accounting = False

    def close(self) -> None:
        self._session.exit()

    def job_info(self, sge_job_id: str) -> JobInfo:
        drmaa = self._drmaa
        try:
            status = self._session.jobStatus(sge_job_id)
        except drmaa.InvalidJobException:  # no longer in the qmaster: finished or deleted
            status = None
        states = drmaa.JobState
        if status == states.QUEUED_ACTIVE:
            return JobInfo(SgeState.QUEUED)
        if status in (states.USER_ON_HOLD,):
            return JobInfo(SgeState.HELD)
        if status in (states.SYSTEM_ON_HOLD, states.USER_SYSTEM_ON_HOLD):
            return JobInfo(SgeState.ERROR, reason=self._error_reason(sge_job_id)
                           or f"it is held by the system; see qstat -j {sge_job_id}")
        if status == states.RUNNING:
            return JobInfo(SgeState.RUNNING)
        if status in (states.SYSTEM_SUSPENDED, states.USER_SUSPENDED, states.USER_SYSTEM_SUSPENDED):
            return JobInfo(SgeState.SUSPENDED)
        if status == states.FAILED:
            fields = self._accounting(sge_job_id)
            if fields:
                return self._finished(sge_job_id, fields)
            # Eqw: DRMAA reports a pending job in error state as failed (sge_status(5)).
            return JobInfo(SgeState.ERROR, reason=self._error_reason(sge_job_id) or "DRMAA reports it failed")
        fields = self._accounting(sge_job_id)
        return self._finished(sge_job_id, fields) if fields else JobInfo(SgeState.UNKNOWN)

    def _finished(self, sge_job_id: str, fields: Mapping[str, str]) -> JobInfo:
        info = info_from_qacct(fields)
        if info.deleted_by is None and self._reporting_file:
            who = deleted_by(self._reporting_file, sge_job_id)
            if who:
                info = dataclasses.replace(info, deleted_by=who)
        return info

    def _error_reason(self, sge_job_id: str) -> str | None:
        """Grid Engine's reason for the job's error state (``qstat -j``); None when it cannot be had.

        A qstat that fails or does not answer leaves the reason out (the job is
        failed all the same: DRMAA said error state), it does not stop the pass.
        """
        text = self._qstat_job(sge_job_id)
        return error_state_reason(text) if text is not None else None

    def exec_host(self, sge_job_id: str) -> str | None:
        """The host Grid Engine dispatched a running job to; None when it cannot be had.

        DRMAA's job status has no host, nor has ``qstat -j`` in Grid Engine
        8.1; the running jobs' list has (``qstat -xml -s r``, its queue
        instance ``queue@host``). The reconciler asks only for a job it is
        about to submit again, so that the new one avoids the host that lost it.
        """
        text = self._qstat(["-xml", "-u", "*", "-s", "r"], f"the host of job {sge_job_id}")
        return dispatched_host(text, sge_job_id) if text is not None else None

    def _qstat_job(self, sge_job_id: str) -> str | None:
        """``qstat -j`` of one job; None when it fails or does not answer."""
        return self._qstat(["-j", str(sge_job_id)], f"job {sge_job_id}")

    def _qstat(self, args: list[str], what: str) -> str | None:
        """qstat's output, bounded by :attr:`QSTAT_TIMEOUT`; None (logged) when it fails or does not answer."""
        try:
            proc = subprocess.run([self._qstat_command, *args], capture_output=True, text=True,
                                  errors="replace", timeout=self.QSTAT_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            LOGGER.warning("qstat for %s did not answer: %s", what, e)
            return None
        if proc.returncode != 0:
            LOGGER.warning("qstat for %s failed (%d): %s", what, proc.returncode, proc.stderr.strip()[:200])
            return None
        return proc.stdout

    def _accounting(self, sge_job_id: str) -> dict[str, str]:
        """The job's accounting record; ``{}`` when there is none to read.

        ``{}`` when qacct says the job is not (yet) there, and when this host
        has no accounting file at all: the qmaster writes it in its own cell
        directory, which a web host does not share unless the site shares
        ``$SGE_ROOT/$SGE_CELL/common``. A job Grid Engine no longer knows is
        then failed after the grace period, without the precise reason
        (deleted, killed by a limit) only accounting gives. Any other failure
        (qacct missing, accounting file unreadable) raises, so the job is left
        alone instead of being taken for gone.
        """
        command = [self._qacct, "-j", str(sge_job_id)]
        if self._accounting_file:
            command += ["-f", self._accounting_file]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        if proc.returncode == 0:
            return parse_qacct(proc.stdout)
        if "not found" in proc.stderr or "not found" in proc.stdout:
            return {}
        if "No such file or directory" in proc.stderr and not self._accounting_file:
            if not self._warned_no_accounting:
                LOGGER.warning("no Grid Engine accounting file on this host (%s): jobs Grid Engine no longer "
                               "knows are failed without the reason accounting would give", proc.stderr.strip())
                self._warned_no_accounting = True
            return {}
        raise RuntimeError(f"qacct -j {sge_job_id} failed ({proc.returncode}): {proc.stderr.strip()}")

    def terminate(self, sge_job_id: str) -> None:
        try:
            self._session.control(sge_job_id, self._drmaa.JobControlAction.TERMINATE)
        except self._drmaa.InvalidJobException:  # gone already: what the deletion wanted
            pass

    def submit(self, spec: JobSpec) -> str:
        """Submit a job (a lost one, again) in this source's DRMAA session: a second session would be refused."""
        from .scheduler import run_job

        return run_job(self._session, spec)


# -- command line ---------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pywps-gridengine-reconciler",
                                     description="Fail WPS jobs that Grid Engine lost.")
    parser.add_argument("-c", "--config", help="pywps.cfg to use (default: $PYWPS_CFG)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="run one pass and exit (default)")
    mode.add_argument("--loop", action="store_true", help="run a pass every [gridengine] interval seconds")
    parser.add_argument("--interval", type=float, help="seconds between passes in --loop (overrides the config)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, source: StateSource | None = None,
         submitter: Submitter | None = None) -> int:
    args = parse_args(argv)
    config = load(args.config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = config.gridengine
    if settings is None:
        print("pywps-gridengine-reconciler: [processing] mode is not scheduler; nothing to reconcile",
              file=sys.stderr)
        return 2
    owned = source is None
    source = source or GridEngineStateSource(accounting_file=settings.accounting_file,
                                             reporting_file=settings.reporting_file)
    if submitter is None and isinstance(source, GridEngineStateSource):
        submitter = source  # its DRMAA session: one per process
    reconciler = Reconciler(JobStore.for_config(config), source, heartbeat_timeout=settings.heartbeat_timeout,
                            gone_grace=settings.gone_grace, submit_timeout=settings.submit_timeout,
                            write_failed=failed_document_writer(config),
                            document_state=status_document_state(config),
                            documents=DocumentFiles(config.outputpath), config=config, submitter=submitter,
                            max_resubmits=settings.max_resubmits)
    interval = args.interval or settings.interval
    leader = reconciler.store.leader_lock("pywps-gridengine-reconciler")
    stop = {"now": False}

    def _stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while True:
            started = time.monotonic()
            leads = leader.acquire()
            if leads:
                result = reconciler.run_once()
            else:
                # Another web host's reconciler leads (it takes over when that one goes),
                # or the database did not answer: either way a new grace period follows.
                reconciler.db_reachable_since = None
                result = PassResult(skipped="another reconciler is the leader" if leads is False
                                    else "database unreachable")
            metrics.reconciler_pass("not_leader" if leads is False else
                                    "database_unreachable" if leads is None or result.skipped else "led")
            if result.skipped:
                LOGGER.info("reconciler pass skipped: %s", result.skipped)
            else:
                LOGGER.info("reconciler pass: %d active job(s), %d failed, %d submitted again, "
                            "%d document(s) repaired, %d that cannot be", result.checked, result.failed,
                            result.resubmitted, result.repaired, result.unrepairable)
            if not args.loop or stop["now"]:
                return 0
            while not stop["now"] and time.monotonic() - started < interval:
                time.sleep(min(0.5, interval))
            if stop["now"]:
                return 0
    finally:
        leader.release()
        if owned and isinstance(source, GridEngineStateSource):
            source.close()


if __name__ == "__main__":
    sys.exit(main())
