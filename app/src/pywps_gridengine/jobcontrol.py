"""Job control, the same on every protocol: who may see a job, its status, results and log, dismiss.

WPS 2.0 GetStatus, GetResult and Dismiss, the WPS 1.0 vendor requests
Dismiss and GetExecutions (:mod:`.wpsjobs`) and OGC API – Processes
(:mod:`.ogcapi`) all answer from here, over the one job table
(:class:`.jobs.JobStore`): a job started through one protocol is seen,
polled and dismissed through the other.

Identity (``[jobs]``, :class:`Access`): the app never authenticates. nginx
sets one request header (``identity_header``) on every request it passes:
the user it authenticated (basic auth), the user an authenticating proxy in
front of it reported (an explicit switch of the nginx role), or an empty
value, so that whatever a client sends in that header never reaches the
app unchecked. A job belongs to the user who started it (``owner`` in its
row, and Grid Engine's account string); a user sees and dismisses only
their own jobs, an operator (``operators``) every job. Without identity
every client is the same anonymous caller: a job is reached by its id,
random and unguessable (uuid4, :class:`.compat.CheckedService`), and the
job list is off unless the operator turns it on (``job_list``).

A dismiss (:meth:`JobControl.dismiss`) moves the row to Dismissed through
the same compare-and-set as every other move, so a job that finished first
keeps its result and a launcher that finishes after is fenced off; then it
deletes the Grid Engine job (DRMAA's terminate: qdel), and writes the WPS
1.0 status document (ProcessFailed, "dismissed by the client", since WPS
1.0 has no such state). The work directory, the job's log and what the job
wrote are kept until the clean-up's retention period ends, like any ended
job's: the log tail stays readable to the client, and nothing is removed
while Grid Engine may still be killing the job that writes there. A
deletion that fails (qmaster away) is retried by the reconciler
(:meth:`.reconciler.Reconciler.stop_dismissed`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from .jobs import DISMISSED, FAILED, JobRecord, JobState, JobStore, PageCursor
from .paths import status_document

LOGGER = logging.getLogger("PYWPS")

#: The WSGI environ key of the request's user (:func:`caller_of`), as the front door read it.
USER_KEY = "pywps_gridengine.user"
#: What a dismissed job's status says (WPS 1.0 ProcessFailed's text, OGC API's message).
DISMISSED_REASON = "dismissed by the client"
#: A user name as it may be recorded and passed to Grid Engine as the account string (qsub -A).
_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
WPS_NS = "http://www.opengis.net/wps/1.0.0"
OWS_NS = "http://www.opengis.net/ows/1.1"
XLINK_NS = "http://www.w3.org/1999/xlink"


@dataclass(frozen=True)
class Access:
    """``[jobs]`` of pywps.cfg: identity, operators, the job list, the log tail and the OGC API's address."""

    identity_header: str = ""
    operators: frozenset[str] = frozenset()
    job_list: bool = False
    log_tail_bytes: int = 65536
    ogcapi_url: str = ""

    @property
    def identity(self) -> bool:
        return bool(self.identity_header)

    @property
    def environ_key(self) -> str:
        return "HTTP_" + self.identity_header.upper().replace("-", "_")


@dataclass(frozen=True)
class Caller:
    """Who asks: a user (None: anonymous) and whether they are an operator."""

    user: str | None = None
    operator: bool = False

    def owns(self, job: JobRecord) -> bool:
        return self.operator or job.owner == self.user


class JobError(Exception):
    """A job request that cannot be answered as asked; each protocol renders it its own way."""

    kind = "error"

    def __init__(self, text: str, job: JobRecord | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.job = job


class NoSuchJob(JobError):
    """No job of this id that the caller may see (someone else's job is not revealed either)."""

    kind = "no-such-job"


class JobFinished(JobError):
    """The job ended (succeeded or failed) before the dismiss: its result stays."""

    kind = "job-finished"


class ResultNotReady(JobError):
    """Results asked of a job that has not succeeded (yet)."""

    kind = "result-not-ready"


class NotAllowed(JobError):
    """The caller may not do this: no identity where one is needed, or the job list is off."""

    kind = "forbidden"


class NoIdentity(NotAllowed):
    kind = "unauthenticated"


def user_from(environ: Mapping[str, Any], access: Access) -> str | None:
    """The request's user, from the header nginx sets (None: none, or identity is off).

    A value that is not a plain user name (control characters, spaces, too
    long) is refused, not shortened: it would be recorded and passed to qsub.
    """
    if not access.identity:
        return None
    value = str(environ.get(access.environ_key) or "").strip()
    if not value:
        return None
    if not _USER.fullmatch(value):
        raise NotAllowed(f"the user name the front end reported ({access.identity_header}) is not a plain "
                         "user name (letters, digits, . _ @ + -, at most 64)")
    return value


def caller_of(environ: Mapping[str, Any], access: Access) -> Caller:
    user = environ.get(USER_KEY) if USER_KEY in environ else user_from(environ, access)
    return Caller(user, user is not None and user in access.operators)


def owner_of(wps_request: Any) -> str | None:
    """The user who sends ``wps_request`` (recorded as the job's owner), as the front door read it."""
    environ = getattr(getattr(wps_request, "http_request", None), "environ", None) or {}
    return environ.get(USER_KEY)


def account_option(owner: str | None) -> str:
    """The qsub option that makes ``owner`` the job's account string (qacct's ``account``)."""
    return f"-A {owner}" if owner and _USER.fullmatch(owner) else ""


def drmaa_terminate(sge_job_id: str) -> None:
    """Delete a Grid Engine job through DRMAA (qdel); a job Grid Engine no longer has is fine.

    One DRMAA session per call, as :class:`.scheduler.DrmaaSubmitter` submits:
    a gunicorn worker is one process, and DRMAA allows one session per process.
    """
    import drmaa  # loads libdrmaa: only where Grid Engine is installed

    with drmaa.Session() as session:
        try:
            session.control(str(sge_job_id), drmaa.JobControlAction.TERMINATE)
        except drmaa.InvalidJobException:
            pass


# -- what a client is shown of a job ---------------------------------------------------------


@dataclass(frozen=True)
class Output:
    """One output of a succeeded job, read from its final status document."""

    identifier: str
    value: str | None = None  # literal or inline complex data
    href: str | None = None  # by reference
    mime_type: str | None = None
    encoding: str | None = None
    schema: str | None = None
    data_type: str | None = None
    uom: str | None = None
    literal: bool = False


@dataclass(frozen=True)
class JobStatus:
    """A job as every protocol shows it: the row and its progress (its outputs: :meth:`JobControl.outputs`)."""

    job: JobRecord
    percent: int | None = None

    @property
    def state(self) -> JobState:
        return JobState(self.job.state)

    def estimated_completion(self, now: dt.datetime) -> dt.datetime | None:
        """When a running job will end at the pace it has shown (its progress so far); None when unknown."""
        job = self.job
        if self.state != JobState.STARTED or not self.percent or job.started_at is None or self.percent >= 100:
            return None
        elapsed = (now - job.started_at).total_seconds()
        return now + dt.timedelta(seconds=elapsed * (100 - self.percent) / self.percent)

    def usage(self) -> dict[str, Any]:
        """What Grid Engine (or the launcher) recorded the job used; only the figures known."""
        job = self.job
        figures = {"execHost": job.exec_host, "exitStatus": job.exit_status, "wallclock": job.wallclock,
                   "cpu": job.cpu, "maxvmem": job.peak_memory, "gridEngineJobId": job.sge_job_id}
        return {key: value for key, value in figures.items() if value is not None}


def outputs_of(document: bytes | str) -> list[Output]:
    """The outputs of a WPS 1.0 ExecuteResponse (a succeeded job's final status document)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
    root = etree.fromstring(document.encode() if isinstance(document, str) else document, parser=parser)
    ns = {"wps": WPS_NS, "ows": OWS_NS}
    found = []
    for out in root.iterfind("wps:ProcessOutputs/wps:Output", ns):
        identifier = (out.findtext("ows:Identifier", "", ns) or "").strip()
        reference = out.find("wps:Reference", ns)
        if reference is not None:
            found.append(Output(identifier, href=reference.get("href") or reference.get(f"{{{XLINK_NS}}}href"),
                                mime_type=reference.get("mimeType"), encoding=reference.get("encoding"),
                                schema=reference.get("schema")))
            continue
        literal = out.find("wps:Data/wps:LiteralData", ns)
        if literal is not None:
            found.append(Output(identifier, value=literal.text or "", data_type=literal.get("dataType"),
                                uom=literal.get("uom"), literal=True))
            continue
        complex_data = out.find("wps:Data/wps:ComplexData", ns)
        if complex_data is not None:
            text = complex_data.text or ""
            if len(complex_data):  # XML content
                text += "".join(etree.tostring(child, encoding="unicode") for child in complex_data)
            found.append(Output(identifier, value=text, mime_type=complex_data.get("mimeType"),
                                encoding=complex_data.get("encoding"), schema=complex_data.get("schema")))
    return found


# -- the log tail ---------------------------------------------------------------------------

#: ``password=...``-style pairs (the scheduler masks them in a refused submission's cause too).
SECRET_PAIR = re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|credentials?)\b(\s*[=:]\s*)\S+")
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:@/'\"]+:)[^\s@/'\"]+@")


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` with the configuration's secrets, passwords in URLs and ``password=...`` pairs masked."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    text = _USERINFO.sub(r"\1[redacted]@", text)
    return SECRET_PAIR.sub(r"\1\2[redacted]", text)


def tail(path: str, limit: int) -> tuple[str, bool] | None:
    """The last ``limit`` bytes of a file as text, and whether it was cut; None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - limit))
            data = f.read(limit)
    except OSError:
        return None
    return data.decode("utf-8", "replace"), size > limit


# -- job control ------------------------------------------------------------------------------


@dataclass
class JobControl:
    """Status, results, log, list and dismiss over the job table, with the callers' rights.

    ``terminate`` deletes a Grid Engine job (:func:`drmaa_terminate`);
    ``write_dismissed`` writes a dismissed job's WPS 1.0 status document
    (:func:`.compat.write_failed_document`); ``document`` reads a succeeded
    job's final status document. Tests give their own.
    """

    store_source: JobStore | Callable[[], JobStore]
    access: Access
    terminate: Callable[[str], None] = drmaa_terminate
    write_dismissed: Callable[[JobRecord, str], None] | None = None
    document: Callable[[JobRecord], bytes | str | None] | None = None
    log_dir: str = ""
    secrets: Sequence[str] = field(default_factory=tuple)

    @property
    def store(self) -> JobStore:
        """The job store; made on first use, so the app starts while the database is away."""
        if callable(self.store_source):
            self.store_source = self.store_source()
        return self.store_source

    def get(self, uuid: str, caller: Caller) -> JobRecord:
        job = self.store.get(str(uuid)) if _plausible_id(uuid) else None
        if job is None or not self.visible(job, caller):
            raise NoSuchJob(f"no job {uuid}")
        return job

    def visible(self, job: JobRecord, caller: Caller) -> bool:
        return not self.access.identity or caller.owns(job)

    def status(self, uuid: str, caller: Caller) -> JobStatus:
        job = self.get(uuid, caller)
        percent = self.store.percents([job.uuid]).get(job.uuid)
        return JobStatus(job, _percent(job, percent))

    def outputs(self, job: JobRecord) -> list[Output]:
        if job.state != JobState.SUCCEEDED:
            raise ResultNotReady(f"job {job.uuid} is {job.state}: it has no results", job)
        document = self.store.kept_document(job.uuid)
        if document is None and self.document is not None:
            document = self.document(job)
        if document is None:
            raise ResultNotReady(f"the results of job {job.uuid} are no longer kept", job)
        return outputs_of(document)

    def log_tail(self, uuid: str, caller: Caller) -> dict[str, Any]:
        """The tail of the job's own stdout and stderr (as Grid Engine wrote them), size-capped, redacted."""
        job = self.get(uuid, caller)
        directory = self.log_dir or job.workdir or ""
        answer: dict[str, Any] = {"jobID": job.uuid, "limit": self.access.log_tail_bytes}
        for stream, suffix in (("stdout", "out"), ("stderr", "err")):
            got = tail(os.path.join(directory, f"{job.uuid}.{suffix}"), self.access.log_tail_bytes) \
                if directory else None
            answer[stream] = None if got is None else redact(got[0], self.secrets)
            answer[f"{stream}Truncated"] = bool(got and got[1])
        return answer

    def list(self, caller: Caller, *, states: Sequence[JobState] = (), processes: Sequence[str] = (),
             since: dt.datetime | None = None, until: dt.datetime | None = None, limit: int = 10,
             after: PageCursor | None = None, offset: int = 0) -> tuple[list[JobStatus], PageCursor | None]:
        """A page of the caller's jobs (every job for an operator), newest first, and the next page's cursor."""
        if self.access.identity:
            if caller.user is None:
                raise NoIdentity("the job list needs a user: sign in")
            owner = None if caller.operator else caller.user
        else:
            if not self.access.job_list:
                raise NotAllowed("the job list is off on this server: without identity every client would "
                                 "see every job (the operator may turn it on: [jobs] job_list)")
            owner = None
        jobs = self.store.find(states=states, identifier=list(processes) or None, since=since, until=until,
                               limit=limit + 1, after=after, offset=offset, owner=owner)
        more = len(jobs) > limit
        jobs = jobs[:limit]
        percents = self.store.percents([job.uuid for job in jobs])
        cursor = PageCursor.of(jobs[-1]) if more and jobs else None
        return [JobStatus(job, _percent(job, percents.get(job.uuid))) for job in jobs], cursor

    def dismiss(self, uuid: str, caller: Caller) -> JobStatus:
        """Stop a job: Dismissed in its row (compare-and-set), its Grid Engine job deleted, its document written.

        Dismissing a dismissed job is harmless (the same answer again); a job
        that succeeded or failed first raises :class:`JobFinished`. Returns the
        dismissed job's status (final: 100 % without asking PyWPS's row).
        """
        job = self._dismiss(uuid, caller)
        return JobStatus(job, _percent(job, None))

    def _dismiss(self, uuid: str, caller: Caller) -> JobRecord:
        if self.access.identity and caller.user is None:
            raise NoIdentity("dismissing a job needs a user: sign in")
        job = self.get(uuid, caller)
        if job.state == DISMISSED:
            return job
        if job.final:
            raise JobFinished(f"job {job.uuid} already {job.state}; there is nothing to dismiss", job)
        reason = DISMISSED_REASON if caller.user is None else f"{DISMISSED_REASON} ({caller.user})"
        if not self.store.transition(job.uuid, DISMISSED, reason):
            current = self.store.get(job.uuid)
            if current is not None and current.state == DISMISSED:
                return current
            raise JobFinished(f"job {job.uuid} already {current.state if current else 'removed'}; "
                              "there is nothing to dismiss", current)
        LOGGER.info("WPS job %s (%s, Grid Engine job %s) dismissed by %s", job.uuid, job.identifier,
                    job.sge_job_id, caller.user or "an anonymous client")
        from . import metrics

        metrics.dismissed(job.identifier)
        if job.sge_job_id:
            try:
                self.terminate(job.sge_job_id)
            except Exception:
                # The row is Dismissed, so the launcher is fenced off; the reconciler deletes the job later.
                LOGGER.warning("could not delete Grid Engine job %s of dismissed WPS job %s; the reconciler "
                               "will retry", job.sge_job_id, job.uuid, exc_info=True)
        if self.write_dismissed is not None:
            try:
                self.write_dismissed(job, reason)
            except Exception:
                LOGGER.warning("could not write the status document of dismissed WPS job %s; the reconciler "
                               "will repair it", job.uuid, exc_info=True)
        return self.store.get(job.uuid) or job


def _percent(job: JobRecord, percent: float | None) -> int | None:
    if JobState(job.state).final:
        return 100
    return None if percent is None else max(0, min(100, int(percent)))


_UUID = re.compile(r"[0-9a-fA-F-]{32,36}")


def _plausible_id(uuid: str) -> bool:
    """Whether ``uuid`` can be a job id at all (a uuid): nothing else reaches the database."""
    return isinstance(uuid, str) and bool(_UUID.fullmatch(uuid))


def for_config(config: Any, store: JobStore | None = None) -> JobControl:
    """The job control of the app's configuration: its store, the DRMAA deletion, the documents."""
    from sqlalchemy.engine import make_url

    from .compat import write_failed_document

    def write_dismissed(job: JobRecord, reason: str) -> None:
        write_failed_document(config, job.identifier, job.uuid, job.workdir, job.sge_job_id, reason)

    def document(job: JobRecord) -> bytes | None:
        try:
            with open(status_document(config.outputpath, job.uuid), "rb") as f:
                return f.read()
        except OSError:
            return None

    secrets: list[str] = []
    try:
        password = make_url(config.database).password if config.database else None
        if password:
            secrets.append(str(password))
    except Exception:  # an unparsable URL has no password to hide
        pass
    return JobControl(store or (lambda: JobStore.for_config(config)), config.jobs,
                      terminate=lambda sge_job_id: drmaa_terminate(sge_job_id), write_dismissed=write_dismissed,
                      document=document, log_dir=config.log_dir, secrets=secrets)


__all__ = ["FAILED", "Access", "Caller", "JobControl", "JobStatus", "NoSuchJob", "Output", "for_config"]
