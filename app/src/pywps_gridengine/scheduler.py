"""Submission of asynchronous WPS jobs to Grid Engine through DRMAA.

Replaces ``pywps.processing.scheduler.Scheduler`` (PyWPS 4.8), which:

* runs PyWPS's ``joblauncher``, which drops the client's output choices
  (asReference, mimeType) — here the app's own launcher is run instead;
* names every job after the launcher and uses one global native
  specification — here each job gets a readable name
  (``<prefix>-<process>-<uuid head>``) and the resources its process declares,
  merged with the operator's per-process overrides (:mod:`.config`);
* forgets the SGE job id after logging it — here it goes into the job table
  and into the status document;
* leaves the status document at Accepted when submission fails — here the
  client is answered a 503 ServerBusy with Retry-After and the job leaves
  nothing behind (:meth:`GridEngineScheduler.withdraw`); a configuration error
  fails the job with the reason;
* knows no limit on active jobs — here the job row is inserted only within
  the caps of ``[gridengine] max_active_jobs`` and ``max_active_jobs_per_client``
  (:mod:`.admission`), and the client is recorded with it.

The DRMAA library is imported only inside :class:`DrmaaSubmitter`, so the rest
works (and is tested) on hosts without Grid Engine.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Protocol

from pywps.processing.basic import Processing
from pywps.response.status import WPS_STATUS
from sqlalchemy.exc import SQLAlchemyError

from . import admission
from .compat import request_row_gone
from .config import AppConfig, ConfigError, Settings
from .jobcontrol import SECRET_PAIR, account_option, owner_of
from .jobs import JobStore, OverCap
from .paths import remove

LOGGER = logging.getLogger("PYWPS")

MAX_JOB_NAME = 60


@dataclass(frozen=True)
class JobSpec:
    """What goes into the DRMAA job template."""

    remote_command: str
    args: list[str]
    working_directory: str
    job_name: str
    native_specification: str
    environment: dict[str, str] = field(default_factory=dict)
    output_path: str = ""
    error_path: str = ""


class Submitter(Protocol):
    def submit(self, spec: JobSpec) -> str:
        """Hand the job to the batch system and return its job id."""
        ...


class DrmaaSubmitter:
    """Submits through the DRMAA library (needs ``DRMAA_LIBRARY_PATH``, ``SGE_ROOT``, ``SGE_CELL``).

    One DRMAA session per submission: a gunicorn sync worker is one process
    with one thread, and DRMAA allows one session per process.
    """

    def submit(self, spec: JobSpec) -> str:
        import drmaa  # loads libdrmaa: only where Grid Engine is installed

        with drmaa.Session() as session:
            return run_job(session, spec)


def run_job(session: Any, spec: JobSpec) -> str:
    """Submit ``spec`` in an open DRMAA session and return the job id.

    Shared by :class:`DrmaaSubmitter` (a session per submission) and the
    reconciler, which submits a lost job again in the session it already has
    open for its queries: DRMAA allows one session per process.
    """
    template = session.createJobTemplate()
    try:
        template.remoteCommand = spec.remote_command
        template.args = list(spec.args)
        template.workingDirectory = spec.working_directory
        template.jobName = spec.job_name
        template.jobEnvironment = dict(spec.environment)
        if spec.native_specification:
            template.nativeSpecification = spec.native_specification
        template.joinFiles = False
        if spec.output_path:
            template.outputPath = ":" + spec.output_path
        if spec.error_path:
            template.errorPath = ":" + spec.error_path
        return str(session.runJob(template))
    finally:
        session.deleteJobTemplate(template)


def job_name(prefix: str, identifier: str, uuid: str) -> str:
    """A job name qstat shows and SGE accepts: ``wps-sleep-1a2b3c4d``.

    SGE rejects ``/ : @ \\ * ?`` and names that start with a digit.
    """
    safe = re.sub(r"[^A-Za-z0-9_.\-]+", "_", identifier).strip("_") or "process"
    head = re.sub(r"[^A-Za-z0-9]", "", str(uuid))[:8]
    name = f"{prefix}-{safe}"[: MAX_JOB_NAME - len(head) - 1] + f"-{head}"
    if not name[0].isalpha():
        name = "j" + name
    return name


def build_job_spec(*, uuid: str, identifier: str, workdir: str, dump_filename: str,
                   declared_resources: Mapping[str, object] | None, settings: Settings,
                   environ: Mapping[str, str], owner: str | None = None) -> JobSpec:
    """Pure construction of the job template from the job and the settings.

    ``owner``, the user who started the job (:mod:`.jobcontrol`), becomes
    the job's account string (``qsub -A``): qstat and qacct show whose it is.
    """
    env = {name: environ[name] for name in settings.pass_env if name in environ}
    env.update(settings.job_env)
    if not settings.launcher_config:
        raise ConfigError(
            "neither PYWPS_CFG nor [gridengine] launcher_config is set: "
            "the job would run on the exec host with PyWPS's default settings"
        )
    env["PYWPS_CFG"] = settings.launcher_config
    args = ["--config", settings.launcher_config, dump_filename]
    env.setdefault("PATH", f"{os.path.dirname(settings.launcher)}:/usr/local/bin:/usr/bin:/bin")
    log_dir = settings.log_dir or workdir
    return JobSpec(
        remote_command=settings.launcher,
        args=args,
        working_directory=workdir,
        job_name=job_name(settings.job_name_prefix, identifier, uuid),
        native_specification=" ".join(part for part in (settings.native_specification(identifier, declared_resources),
                                                         account_option(owner)) if part),
        environment=env,
        output_path=os.path.join(log_dir, f"{uuid}.out"),
        error_path=os.path.join(log_dir, f"{uuid}.err"),
    )


# The cause of a refused submission, as the client may read it in the 503's ExceptionText.
CAUSE_LENGTH = 160
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://\S+")
_USERINFO = re.compile(r"[^\s:@/'\"]+:[^\s@/'\"]+@[^\s/'\"]+")  # user:password@host without a scheme
_PATH = re.compile(r"(?<![\w.~])(?:/[^\s/'\"():,]+)+/([^\s/'\"():,]+)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
# Where the cluster's services are: "on host \"qmaster\"", "port 6444", an IPv4 address.
# (a bare word after "host" is left alone: "no suitable host found" stays readable)
_HOST = re.compile(r"(?i)\b(host|port)(\s*[=:]\s*[^\s:;,()]+|\s+(?:\"[^\"]*\"|'[^']*'|\d+\b))")
_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b")


def client_cause(error: BaseException) -> str:
    """A short cause of ``error`` that is safe to show a client: no trace, no secret, no layout of the host.

    The full exception goes to the log; the client gets its first line, with
    every URL and ``user:password@host`` replaced (a database URL carries its password), ``password=``
    and similar values hidden, host names and ports after "host"/"port" and IPv4 addresses hidden,
    absolute paths cut to their last component,
    control characters removed, and at most ``CAUSE_LENGTH`` characters.
    """
    text = str(error).strip()
    if isinstance(error, OSError) and error.strerror:  # "[Errno 28] No space left on device: '/srv/...'"
        text = error.strerror + (f": {os.path.basename(str(error.filename))}" if error.filename else "")
    first = next((line for line in text.splitlines() if line.strip()), "")
    first = _CONTROL.sub(" ", first)
    first = _USERINFO.sub("<address>", _URL.sub("<address>", first))
    first = SECRET_PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}***", first)
    first = _HOST.sub(lambda m: f"{m.group(1)}{'=' if m.group(2).lstrip()[:1] in '=:' else ' '}***", first)
    first = _IPV4.sub("<address>", first)
    first = _PATH.sub(lambda m: f".../{m.group(1)}", first)
    first = " ".join(first.split())
    cause = f"{type(error).__name__}: {first}" if first else type(error).__name__
    return cause if len(cause) <= CAUSE_LENGTH else cause[:CAUSE_LENGTH - 3].rstrip() + "..."


class GridEngineScheduler(Processing):
    """PyWPS ``Processing`` implementation that submits the job to Grid Engine."""

    submitter: Submitter = DrmaaSubmitter()

    def __init__(self, process: Any, wps_request: Any, wps_response: Any, config: AppConfig | None = None,
                 submitter: Submitter | None = None) -> None:
        super().__init__(process, wps_request, wps_response)
        self.config = config if config is not None else process.app_config
        if submitter is not None:
            self.submitter = submitter

    def start(self) -> None:
        from . import metrics

        job = self.job
        response = job.wps_response
        uuid = str(job.uuid)
        # -- admission control: the caps, checked exactly as the row is inserted; the client recorded with it
        limits = self.config.admission
        store: JobStore | None = None
        try:
            store = JobStore.for_config(self.config)
            store.create(uuid, job.name, workdir=job.workdir, client=admission.client_of(job.wps_request),
                         max_total=limits.max_active_jobs, max_per_client=limits.max_active_jobs_per_client,
                         owner=owner_of(job.wps_request))
        except OverCap as e:
            LOGGER.warning("WPS job %s refused: %s", uuid, e)
            self.withdraw(store, admission.busy(limits, str(e)), metrics.OVER_CAP)
        except SQLAlchemyError as e:
            LOGGER.warning("WPS job %s refused, the database does not answer: %s", uuid, str(e).splitlines()[0])
            self.withdraw(store, admission.unavailable(limits, admission.DATABASE_DOWN), metrics.DATABASE_DOWN)
        assert store is not None
        # -- end of admission control
        response.job_store = store
        # what a failure below means: first the dump, on the shared tree
        failing, cause = admission.SHARED_TREE_DOWN, metrics.SHARED_TREE_DOWN
        try:
            settings = self.config.gridengine
            if settings is None:
                raise ConfigError("[processing] mode is not scheduler: no [gridengine] settings loaded")
            dump_filename = job.dump()
            spec = build_job_spec(
                uuid=uuid, identifier=job.name, workdir=job.workdir, dump_filename=dump_filename,
                declared_resources=getattr(job.process, "gridengine_resources", None),
                settings=settings, environ=os.environ, owner=owner_of(job.wps_request),
            )
            failing, cause = admission.SCHEDULER_DOWN, metrics.SCHEDULER_DOWN
            sge_job_id = self.submitter.submit(spec)
        except ConfigError as e:
            LOGGER.error("Grid Engine configuration error: %s", e)
            metrics.submission_failed(job.name, metrics.CONFIGURATION)
            response._update_status(WPS_STATUS.FAILED, f"Server configuration error: {e}", 100)
            return
        except Exception as e:  # DRMAA errors, unreachable qmaster, unwritable workdir ...
            # Admission control: nothing was queued, so the client is told to retry, and nothing stays behind.
            LOGGER.exception("Could not submit job %s to Grid Engine", uuid)
            self.withdraw(store, admission.unavailable(limits, f"{failing} ({client_cause(e)})"), cause)
        LOGGER.info("WPS job %s submitted to Grid Engine as job %s (%s)", uuid, sge_job_id, spec.job_name)
        metrics.submitted(job.name)
        response.sge_job_id = sge_job_id
        message = f"Queued as Grid Engine job {sge_job_id} ({spec.job_name})"
        try:
            store.set_submitted(uuid, sge_job_id, spec.job_name, spec.native_specification)
            # Accepted again with the job id; the job row refuses it (and the status
            # document is left alone) once the launcher has started the job.
            response._update_status(WPS_STATUS.ACCEPTED, message, 0)
        except Exception:
            # The job runs: the client gets its Accepted answer, and the launcher
            # records its own Grid Engine job id (JOB_ID) when it starts.
            LOGGER.exception("WPS job %s runs as Grid Engine job %s, but recording that failed", uuid, sge_job_id)
            response.message = message
            response._update_status_doc()

    def withdraw(self, store: JobStore | None, refusal: Exception, cause: str) -> NoReturn:
        """Undo a job Grid Engine never got, count it as a failed submission by ``cause`` (the metrics'
        label), then raise ``refusal`` (the client's 503).

        Its status document (PyWPS wrote Accepted before submitting), its work
        directory (inputs, dump) and its rows go: a refused job leaves nothing
        behind. A row the database cannot delete now stays Accepted with no
        Grid Engine job id, and the reconciler fails it after ``submit_timeout``.
        """
        from . import metrics

        job = self.job
        uuid = str(job.uuid)
        metrics.submission_failed(job.name, cause)
        for path in (job.process.status_location, job.workdir):
            try:
                if path:
                    remove(Path(path))
            except OSError as e:
                LOGGER.warning("could not remove %s of refused job %s: %s", path, uuid, e)
        if store is not None:
            try:
                store.discard(uuid)
            except SQLAlchemyError as e:
                LOGGER.warning("could not delete the rows of refused job %s: %s", uuid, str(e).splitlines()[0])
        request_row_gone(uuid)
        raise refusal
