"""Everything the app does with PyWPS's private interfaces, in one place.

PyWPS 4.8 offers no public hook for what scheduler mode on a batch cluster
needs, so the app overrides or calls these private members:

* ``Process._execute_process``, ``Process._run_async``,
  ``Process.launch_next_process`` (:class:`SchedulerProcessMixin`): submit
  every asynchronous request to Grid Engine at once instead of PyWPS's own
  queue, which is broken in scheduler mode;
* ``Process._set_uuid``, ``Process._setup_status_storage``,
  ``Process._run_process`` (:func:`restore_job`, :func:`run_process`,
  :func:`write_failed_document`): rebuild and run a job on an exec host, and
  write a job's failed status document from the reconciler;
* ``ExecuteResponse._update_status``, ``_update_status_doc``,
  ``_update_status_file`` (:class:`GridEngineExecuteResponse`): the job row
  decides every state change, status documents are replaced atomically;
* ``UrlHandler.file``/``size`` (their getters; the handler's ``_file``,
  ``_ref`` and ``IOHandler._build_file_name``), ``ComplexInput.url_handler``
  and ``process`` (``_validate_file_input``) (:func:`install_reference_fetching`): inputs by
  reference are fetched under the app's policy (:mod:`.fetch`), and
  :func:`check_references` checks them at Execute;
* ``configparser.RawConfigParser._sections`` (:func:`section_items`): a
  section's own keys, without the environment PyWPS uses as DEFAULT section;
* ``pywps.app.Service``'s and ``pywps.response.basic``'s module names
  ``log_request`` and ``store_status`` (:func:`install_request_logging`):
  discovery requests write no row, and every Execute passes the front door's
  admission (:mod:`.admission`) before its row and work directory exist;
* ``dblog.get_session`` (:func:`install_pooled_sessions`): PyWPS's sessions
  come from a pool per process, not a new connection each;
* ``Service.call`` and ``Service.execute`` (:class:`CheckedService`, calling
  ``Service._set_grass``, ``Service._parse_and_execute`` and a response's
  ``_update_status``): the front door (:mod:`.frontdoor`) reads and checks a
  request before PyWPS writes a row or creates a work directory, and a
  rejected Execute leaves no work directory behind;
* ``ExecuteResponse.__call__`` (:class:`GridEngineExecuteResponse`): the work
  directory of a RawDataOutput answer is removed once the answer is sent, not
  before (PyWPS removed the file it was about to send).

:data:`PINNED_SIGNATURES` lists the signature of each overridden or called
member as the installed PyWPS has it; ``tests/test_compat.py`` compares them
with the PyWPS that is installed, so a PyWPS release that changes one fails a
test, not production.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import json
import logging
import os
import resource
import shutil
import threading
import time
import uuid as uuid_module
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from pywps import Process, Service, WPSRequest, dblog
from pywps.app.exceptions import ProcessError
from pywps.exceptions import (
    FileSizeExceeded,
    FileURLNotSupported,
    InvalidParameterValue,
    NoApplicableCode,
    OperationNotSupported,
    StorageNotSupported,
)
from pywps.inout import basic as pywps_basic
from pywps.inout.storage.file import FileStorage
from pywps.response.execute import ExecuteResponse
from pywps.response.status import WPS_STATUS
from sqlalchemy.exc import DBAPIError
from werkzeug.wsgi import ClosingIterator

from .fetch import FetchRefused, active_policy
from .jobs import STATE_OF_STATUS, JobState, JobStore, RequestStatus, Usage
from .status import atomic_write

LOGGER = logging.getLogger("PYWPS")

# "module:qualname" -> str(inspect.signature(...)) in the PyWPS release the app is built for.
PINNED_SIGNATURES: Mapping[str, str] = {
    "pywps.app.Process:Process.execute": "(self, wps_request, uuid)",
    "pywps.app.Process:Process._execute_process": "(self, async_, wps_request, wps_response)",
    "pywps.app.Process:Process._run_async": "(self, wps_request, wps_response)",
    "pywps.app.Process:Process._run_process": "(self, wps_request, wps_response)",
    "pywps.app.Process:Process._set_uuid": "(self, uuid)",
    "pywps.app.Process:Process._setup_status_storage": "(self)",
    "pywps.app.Process:Process.launch_next_process": "(self)",
    "pywps.app.Process:Process.setup_outputs_from_wps_request": "(self, wps_request)",
    "pywps.app.Process:Process.set_workdir": "(self, workdir)",
    "pywps.app.Process:Process.clean": "(self)",
    "pywps.app.WPSRequest:WPSRequest.restore_json": "(self, value)",
    # inputs by reference (install_reference_fetching, check_references): replaced getters and methods keep
    # PyWPS's as __wrapped__, so these are PyWPS's own signatures
    "pywps.inout.basic:UrlHandler.__init__": "(self, value, ref)",
    "pywps.inout.basic:UrlHandler.file.fget": "(self)",
    "pywps.inout.basic:UrlHandler.size.fget": "(self)",
    "pywps.inout.basic:UrlHandler.max_size": "()",
    "pywps.inout.basic:UrlHandler._openurl": "(href, data=None)",
    "pywps.inout.basic:IOHandler._build_file_name": "(self, href='')",
    "pywps.inout.basic:IOHandler.url.fset": "(self, value)",
    "pywps.inout.basic:ComplexInput.url_handler": "(self, inpt)",
    "pywps.inout.basic:ComplexInput._validate_file_input": "(href)",
    "pywps.inout.basic:ComplexInput.process": "(self, inpt)",
    "pywps.response.execute:ExecuteResponse.__init__": "(self, wps_request, uuid, **kwargs)",
    "pywps.response.execute:ExecuteResponse._update_status":
        "(self, status, message, status_percentage, clean=True)",
    "pywps.response.execute:ExecuteResponse._update_status_doc": "(self)",
    "pywps.response.execute:ExecuteResponse._update_status_file": "(self)",
    "pywps.dblog:store_status": "(uuid, wps_status, message=None, status_percentage=None)",
    "pywps.dblog:get_session": "()",
    # admission control (install_request_logging): the module names replaced, and the flow relied on
    "pywps.dblog:log_request": "(uuid, request)",
    "pywps.app.Service:Service.call": "(self, http_request)",
    "pywps.app.Service:Service.prepare_process_for_execution": "(self, identifier)",
    "pywps.response.basic:WPSResponse._update_status": "(self, status, message, status_percentage)",
    # the front door (CheckedService; GridEngineExecuteResponse.__call__), see frontdoor.py
    "pywps.app.Service:Service.execute": "(self, identifier, wps_request, uuid)",
    "pywps.app.Service:Service._parse_and_execute": "(self, process, wps_request, uuid)",
    "pywps.app.Service:Service._set_grass": "(self)",
    "pywps.response.execute:ExecuteResponse.__call__": "(self, request)",
}


# -- configuration ------------------------------------------------------------------------


def section_items(cfg: Any, section: str) -> dict[str, str]:
    """Raw key/values of one pywps.cfg section, without configparser's DEFAULT/env leakage.

    PyWPS's parser is built with ``os.environ`` as its DEFAULT section, so
    ``cfg.options(section)`` would list every environment variable; the keys
    the file itself sets are in the parser's private ``_sections``.
    """
    if cfg is None or not cfg.has_section(section):
        return {}
    own = cfg._sections.get(section, {})
    return {key: cfg.get(section, key) for key in own}


# -- responses ------------------------------------------------------------------------------


class JobFenced(RuntimeError):
    """The job row refused a state change (e.g. the reconciler already failed the job)."""


class ResultNotRecorded(RuntimeError):
    """A final state could not be written: the database stayed unreachable past the retry bound."""


class GridEngineExecuteResponse(ExecuteResponse):
    """ExecuteResponse whose state changes go through the job row first.

    Works around three things PyWPS 4.8's ``ExecuteResponse`` does:

    * it writes the status document in place through ``FileStorage.write``
      (truncate + write): here it is replaced atomically (:mod:`.status`);
    * it overwrites every Accepted message with "PyWPS Process X accepted", so
      the "submitted as SGE job N" message never reaches the client: here the
      message is kept, and every status document of a Grid Engine job names
      its SGE job id;
    * it knows nothing about a job being failed from outside: here, for a job
      with a job row (``job_store`` set), every state change and progress
      update is a compare-and-set on that row (:meth:`.JobStore.record`), which
      also writes PyWPS's requests row; the status document is written only
      when the row accepted the change. A refused Accepted is dropped (the
      launcher has moved the job on); any other refusal raises
      :class:`JobFenced`, so a late launcher never overwrites a final state.
    """

    _shared_template_env: Any = None

    def __init__(self, wps_request: Any, uuid: Any, **kwargs: Any) -> None:
        super().__init__(wps_request, uuid, **kwargs)
        # PyWPS builds a new Jinja environment per response and so compiles the
        # template again for every request; one shared environment keeps the
        # compiled template (Jinja environments are safe to share for rendering).
        cls = GridEngineExecuteResponse
        if cls._shared_template_env is None:
            cls._shared_template_env = self.template_env
        self.template_env = cls._shared_template_env
        self.sge_job_id: str | None = None
        self.job_store: JobStore | None = None
        self.exec_host: str | None = None
        self.final_recorded = False  # this response moved the row to a final state

    def _update_status(self, status: int, message: str, status_percentage: int, clean: bool = True) -> None:
        """Same steps as ``ExecuteResponse._update_status``, with the job row deciding.

        The document is built first (building it stores the outputs and may
        fail), then the change is claimed on the job row (which writes PyWPS's
        requests row in the same transaction) and the status file is written
        while that row is locked, so competing writers of one job's document
        (the web host's Accepted, the launcher's updates) write in row order.
        """
        self.message = message
        self.status = status
        self.status_percentage = status_percentage
        self._update_status_doc()
        write = self._update_status_file if self.store_status_file else None
        state = STATE_OF_STATUS.get(RequestStatus(status)) if self.job_store is not None else None
        if state is None:
            if self.job_store is None:
                dblog.store_status(self.uuid, status, message, status_percentage)
            if write is not None:
                write()
        else:
            # The document is written under the job row's lock (JobStore.record). A succeeded
            # document in file storage is kept with the row too: it holds the outputs, which
            # nothing else stores, and the reconciler's repair pass restores it from there.
            keep = (self.doc if state == JobState.SUCCEEDED and write is not None
                    and isinstance(self.process.status_store, FileStorage) else None)
            recorded = self._record(state, message, status_percentage, write, document=keep)
            if recorded is None:  # database unreachable: a progress update is dropped, not fatal
                return
            if recorded and state.final:
                self.final_recorded = True
            if not recorded:
                if state == JobState.ACCEPTED:
                    return
                raise JobFenced(f"job {self.uuid} is already finished; not moving it to {state}")
        if clean and status in (WPS_STATUS.SUCCEEDED, WPS_STATUS.FAILED):
            if getattr(self.wps_request, "raw", False) and not self.store_status_file:
                # A RawDataOutput answer is read from the work directory when it is sent
                # (__call__): removing the directory now would remove the file to send.
                self.clean_deferred = True
            else:
                self.process.clean()

    #: The work directory is removed once the answer is sent (a RawDataOutput answer).
    clean_deferred: bool = False

    def __call__(self, environ: Any, start_response: Callable[..., Any]) -> Any:
        """The answer, with the work directory removed when the WSGI server closes it."""
        try:
            body = super().__call__(environ, start_response)
        except BaseException:
            self._clean_after_answer()
            raise
        return ClosingIterator(body, self._clean_after_answer)

    def _clean_after_answer(self) -> None:
        if self.clean_deferred:
            self.clean_deferred = False
            self.process.clean()

    #: Seconds a final state is retried while the database is unreachable
    #: (the launcher sets it from ``[gridengine] db_retry_timeout``).
    db_retry_timeout: float = 0.0
    #: What the job used so far, recorded with its final state (the launcher sets it).
    usage: Callable[[], Usage] | None = None

    def _record(self, state: JobState, message: str, percent: int,
                then: Callable[[], None] | None = None, document: str | None = None) -> bool | None:
        """The job row's answer to a change: True/False, or None when the database is unreachable.

        A progress update (or Started) is given up at once when the database
        cannot be reached: the process keeps running. A final state is retried
        for ``db_retry_timeout`` seconds, so a job that finishes during a
        database outage still records its result when the database returns;
        past that, :class:`ResultNotRecorded` is raised.
        """
        assert self.job_store is not None
        deadline = time.monotonic() + (self.db_retry_timeout if state.final else 0.0)
        delay = 1.0
        while True:
            try:
                usage = self.usage() if state.final and self.usage is not None else None
                # The launcher's changes hold only while the row names its Grid Engine job (or none):
                # a job the reconciler submitted again runs as the new one only (JobStore.resubmitted).
                fence = self.sge_job_id if state != JobState.ACCEPTED else None
                return self.job_store.record(str(self.uuid), state, message, percent, exec_host=self.exec_host,
                                             usage=usage, then=then, document=document, sge_job_id=fence)
            except DBAPIError as e:
                if time.monotonic() >= deadline:
                    if state.final:
                        timeout, self.db_retry_timeout = self.db_retry_timeout, 0.0  # give up once, not per attempt
                        raise ResultNotRecorded(
                            f"the job {state} but the database was unreachable for {timeout:.0f} s, "
                            f"so its result could not be recorded") from e
                    LOGGER.warning("database unreachable, %s update of job %s not recorded: %s", state, self.uuid,
                                   str(e).splitlines()[0])
                    return None
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 15.0)

    @property
    def json(self) -> dict[str, Any]:
        message = self.message
        data = super().json
        status = data.get("status")
        if isinstance(status, dict):
            if self.status == WPS_STATUS.ACCEPTED:
                # PyWPS replaces every Accepted message by a fixed text; keep ours.
                self.message = message
                status["message"] = message
            if self.sge_job_id and f"Grid Engine job {self.sge_job_id}" not in str(status.get("message", "")):
                status["message"] = f"{status.get('message', '')} [Grid Engine job {self.sge_job_id}]".strip()
            if self.usage is not None and self.status in (WPS_STATUS.SUCCEEDED, WPS_STATUS.FAILED):
                # What the job used, in its final document: the WPS 1.0 client's view of the figures
                # the OGC API's statusInfo gives as "usage" (jobcontrol.JobStatus.usage).
                status["message"] = f"{status.get('message', '')} [{usage_text(self.usage())}]".strip()
        return data

    def _update_status_file(self) -> None:
        store = self.process.status_store
        if isinstance(store, FileStorage):
            try:
                atomic_write(self.process.status_location, self.doc)
            except OSError as e:
                raise NoApplicableCode(f"Writing Response Document failed with : {e}") from e
        else:  # other storages (S3) have their own write semantics
            super()._update_status_file()


def usage_text(usage: Usage) -> str:
    """What a job used, as its final status document says it: host, wallclock, CPU, peak memory."""
    parts = []
    if usage.wallclock is not None:
        parts.append(f"wallclock {usage.wallclock:.1f} s")
    if usage.cpu is not None:
        parts.append(f"cpu {usage.cpu:.1f} s")
    if usage.peak_memory is not None:
        parts.append(f"peak memory {usage.peak_memory / 2**20:.0f} MiB")
    where = f"ran on {usage.exec_host}" if usage.exec_host else "ran"
    return f"{where}: {', '.join(parts)}" if parts else where


# -- processes ------------------------------------------------------------------------------


class SchedulerProcessMixin(Process):
    """PyWPS ``Process`` overrides for scheduler mode (see :class:`.process.GridEngineProcess`).

    ``app_config`` is the :class:`~.config.AppConfig` the service was built
    with (None for a process used on its own: PyWPS's behaviour).
    """

    app_config: Any = None
    #: Identifiers of the complex inputs the service may fetch with POST when the client asks for it
    #: (``method="POST"`` in the Reference); every other reference is fetched with GET only (:mod:`.fetch`).
    post_reference_inputs: frozenset[str] = frozenset()

    @property
    def _scheduler(self) -> bool:
        return self.app_config is not None and self.app_config.scheduler

    def execute(self, wps_request: Any, uuid: Any) -> Any:
        # Same checks as Process.execute, with the app's response class.
        self._set_uuid(uuid)
        self._setup_status_storage()
        self.async_ = False
        wps_response = GridEngineExecuteResponse(wps_request, uuid=self.uuid, process=self)
        if wps_request.store_execute == "true":
            if self.store_supported != "true":
                raise StorageNotSupported("Process does not support the storing of the execute response")
            if wps_request.status == "true":
                if self.status_supported != "true":
                    raise OperationNotSupported("Process does not support the updating of status")
                wps_response.store_status_file = True
                self.async_ = True
            else:
                wps_response.store_status_file = False
        check_references(self, wps_request, fetch_now=not self.async_)  # inputs by reference (fetch.py)
        return self._execute_process(self.async_, wps_request, wps_response)

    def set_workdir(self, workdir: str) -> None:
        super().set_workdir(workdir)
        current = CURRENT_REQUEST.get()  # admission control: a refused Execute leaves no work directory
        if current is not None:
            current.workdir_created(workdir)

    def _execute_process(self, async_: bool, wps_request: Any, wps_response: Any) -> Any:
        current = CURRENT_REQUEST.get()  # admission control: the request passed PyWPS's checks
        if current is not None:
            current.execution_started()
        if not self._scheduler:
            return super()._execute_process(async_, wps_request, wps_response)
        wps_response._update_status(WPS_STATUS.ACCEPTED, "PyWPS Request accepted", 0)
        if async_:
            self._run_async(wps_request, wps_response)
            return wps_response
        return self._run_process(wps_request, wps_response)

    def _run_async(self, wps_request: Any, wps_response: Any) -> None:
        if not self._scheduler:
            super()._run_async(wps_request, wps_response)
            return
        from .scheduler import GridEngineScheduler

        GridEngineScheduler(self, wps_request, wps_response, config=self.app_config).start()

    def launch_next_process(self) -> None:
        if self._scheduler:
            return
        super().launch_next_process()


# -- jobs on an exec host, and from the reconciler ---------------------------------------------


class DumpRefused(ValueError):
    """A job dump that does not name one of the app's own processes, as that process's class.

    The dump lies on the shared tree; whoever can write there must not make an
    exec host or the reconciler import a module of their choosing, so a job's
    process is never imported by the class path the dump names.
    """


def dump_process(value: Any, identifier: str | None = None) -> Process:
    """The process a job dump's ``process`` entry names, resolved from the app's own process list.

    Replaces PyWPS's ``Process.from_json``, which imports whatever
    ``module:Class`` the dump names and instantiates it: here the dump's
    ``identifier`` picks one of the processes the service offers
    (:data:`.processes.PROCESS_CLASSES`, the list ``wsgi.py`` serves), its
    ``class`` must be exactly that process's class as ``Process.json`` wrote
    it, and its ``uuid`` must be a UUID (it becomes the status document's
    file name). ``identifier``, when given, is the process the job's row
    names (the reconciler's resubmission): the dump must name the same one.
    Anything else raises :class:`DumpRefused`; nothing is imported.
    """
    from .processes import process_class

    if not isinstance(value, Mapping):
        raise DumpRefused("the job dump holds no process description")
    named, class_path, uuid = value.get("identifier"), value.get("class"), value.get("uuid")
    if not isinstance(named, str) or not named:
        raise DumpRefused("the job dump names no process identifier")
    if identifier is not None and named != identifier:
        raise DumpRefused(f"the job dump names process {named!r}, not the job's process {identifier!r}")
    try:
        cls = process_class(named)
    except KeyError:
        raise DumpRefused(f"the job dump names process {named!r}, which this service does not offer") from None
    expected = f"{cls.__module__}:{cls.__name__}"  # as Process.json writes it
    if class_path != expected:
        raise DumpRefused(f"the job dump names class {class_path!r} for process {named!r}, not {expected!r}")
    try:
        uuid_module.UUID(str(uuid))
    except ValueError:
        raise DumpRefused(f"the job dump's job id {uuid!r} is not a UUID") from None
    workdir = value.get("workdir")
    if workdir is not None and not isinstance(workdir, str):
        raise DumpRefused("the job dump's work directory is not a path")
    process = cls()
    process._set_uuid(uuid)  # what Process.from_json does after it instantiated the class
    process.set_workdir(workdir)
    return process


def restore_job(dump_path: str, config: Any,
                identifier: str | None = None) -> tuple[Any, Any, GridEngineExecuteResponse]:
    """Rebuild (process, wps_request, wps_response) from a job dump, output choices included.

    The process comes from :func:`dump_process` (one of the app's own
    processes, never a class the dump could name); ``identifier``: the process
    the job's row names, which the dump must name too.
    """
    with open(dump_path, encoding="utf-8") as handle:
        value = json.load(handle)
    if not isinstance(value, Mapping) or not isinstance(value.get("wps_request"), str):
        raise DumpRefused("the file is not a job dump (no process and request)")
    process = dump_process(value.get("process"), identifier)
    process.app_config = config
    wps_request = WPSRequest()
    wps_request.restore_json(json.loads(value["wps_request"]))
    process._setup_status_storage()
    # The client's asReference/mimeType choices, which PyWPS's joblauncher loses.
    process.setup_outputs_from_wps_request(wps_request)
    wps_response = GridEngineExecuteResponse(wps_request, uuid=process.uuid, process=process)
    wps_response.store_status_file = True
    return process, wps_request, wps_response


def _mebibytes(size: int) -> str:
    """A byte count as Grid Engine writes memory figures: whole gibibytes as ``2G``, else ``512M``."""
    return f"{size / 2**30:g}G" if size % 2**30 == 0 else f"{size / 2**20:.0f}M"


def peak_virtual_memory(status_file: str = "/proc/self/status") -> int | None:
    """This process's peak virtual memory in bytes (``VmPeak``), or None where it cannot be read.

    Grid Engine enforces ``h_vmem`` as the address space limit (RLIMIT_AS) of
    the job's processes, so the peak of the launcher's own address space is
    the figure to set beside the limit: the per-process analogue of the
    ``maxvmem`` accounting reports for the whole job, and known at once, when
    the job itself reports its failure (accounting only once the job has ended).
    ``VmPeak`` is Linux's (proc(5)); another system, or a /proc that is not
    mounted or not readable, gives None and the reason names the limit only.
    """
    try:
        with open(status_file, encoding="ascii", errors="replace") as handle:
            for line in handle:
                name, _, value = line.partition(":")
                if name == "VmPeak":
                    number, _, unit = value.strip().partition(" ")
                    return int(number) * 1024 if unit.strip().lower() == "kb" and number.isdigit() else None
    except OSError:
        return None
    return None


def memory_limit_reason(status_file: str = "/proc/self/status") -> str:
    """What to tell the client when a job ran out of memory, naming its limit and its peak where known.

    The peak is the address space the process reached before the allocation
    that failed (which would have taken it past the limit, so it was never
    granted): below the limit, by the size of that allocation.
    """
    limit, _ = resource.getrlimit(resource.RLIMIT_AS)  # what Grid Engine's h_vmem sets
    peak = peak_virtual_memory(status_file)
    peak_text = f" (peak virtual memory {_mebibytes(peak)})" if peak else ""
    if limit == resource.RLIM_INFINITY:
        return f"The job ran out of memory{peak_text}."
    return f"The job ran out of memory: it reached its memory limit h_vmem={_mebibytes(limit)}{peak_text}."


def run_process(process: Any, wps_request: Any, wps_response: Any) -> Any:
    """Run the process's handler with PyWPS's status handling (``Process._run_process``).

    A ``MemoryError`` (an allocation past the job's h_vmem, which Grid Engine
    enforces as the address space limit) becomes a ``ProcessError`` naming the
    limit: PyWPS shows a ProcessError's text to the client, and any other
    exception as "Process failed, please check server error log".
    """
    handler = process.handler

    def guarded(request: Any, response: Any) -> Any:
        try:
            return handler(request, response)
        except MemoryError:
            raise ProcessError(memory_limit_reason(), allowed_chars=_REASON_CHARS) from None
        except (ReferenceRefused, ReferenceTooLarge) as e:  # a reference refused when the job fetched it
            raise ProcessError(e.description, allowed_chars=_REASON_CHARS) from None

    process.handler = guarded
    return process._run_process(wps_request, wps_response)


def write_failed_document(config: Any, identifier: str, uuid: str, workdir: str | None, sge_job_id: str | None,
                          reason: str) -> None:
    """Write the ProcessFailed status document (atomically) of a job whose row is already failed.

    Only the document: the job row and PyWPS's requests row were written by
    the compare-and-set that failed the job. The process class is needed for
    the document's process description; the work directory is kept.
    """
    from .processes import process_class

    process = process_class(identifier)()
    process.app_config = config
    process._set_uuid(uuid)
    process._setup_status_storage()
    if workdir and os.path.isdir(workdir):
        # Only an existing one: PyWPS's setter creates directories under it, and a work directory
        # already gone (removed by an operator, the clean-up, or lost before the job could start)
        # must neither come back nor stop the document (the reconciler's sandbox cannot write there).
        process.set_workdir(workdir)
    wps_request = WPSRequest()
    wps_request.language = config.language
    response = GridEngineExecuteResponse(wps_request, uuid=uuid, process=process)
    response.store_status_file = True
    _write_status_document(response, sge_job_id, WPS_STATUS.FAILED, reason, 100)


def write_accepted_document(config: Any, dump_path: str, sge_job_id: str, message: str) -> None:
    """Write the ProcessAccepted status document of a job the reconciler submitted again.

    Rebuilt from the job's dump, as the launcher rebuilds the job, so it is the
    document the client was first given (the request's lineage, its output
    choices) with the new Grid Engine job id and the message saying why.
    Called by the compare-and-set that moves the row to the new job
    (:meth:`.JobStore.resubmitted`), under the row's lock.
    """
    _, _, response = restore_job(dump_path, config)
    _write_status_document(response, sge_job_id, WPS_STATUS.ACCEPTED, message, 0)


def _write_status_document(response: GridEngineExecuteResponse, sge_job_id: str | None, status: Any,
                           message: str, percent: int) -> None:
    """Write ``response``'s status document in ``status`` (the reconciler's writes: no row is changed here)."""
    response.sge_job_id = sge_job_id
    response.status = status
    response.message = message
    response.status_percentage = percent
    response._update_status_doc()
    response._update_status_file()


# -- inputs by reference: the fetch policy (:mod:`.fetch`) where PyWPS fetches ---------------------
#
# PyWPS 4.8 fetches a reference in the getter of ``UrlHandler.file`` (through
# ``UrlHandler._openurl``: requests.get/post, no timeout, redirects followed)
# when a handler or a validator first reads the input, and a POST body
# reference in ``ComplexInput.url_handler`` while it parses the request. It has
# no hook for either, so :func:`install_reference_fetching` replaces them in
# PyWPS's classes, once, when this module is imported: on the web host (the
# service) and on the exec hosts (the launcher restores the job through
# :func:`restore_job`), and in PyWPS's own forked jobs in local mode. The
# replacements keep PyWPS's functions as ``__wrapped__``, so
# :data:`PINNED_SIGNATURES` still checks PyWPS's signatures.
#
# Execute checks every reference before the job is accepted
# (:func:`check_references`, called by :meth:`SchedulerProcessMixin.execute`):
# a synchronous request fetches its references there, so every refusal is an
# ExceptionReport; an asynchronous one has its addresses checked there (its
# job fetches on the exec host, where the policy holds again: a refusal then
# fails the job with the reason, see :func:`run_process`).

#: Characters a refusal's reason may keep in a ProcessFailed message (PyWPS strips the others).
_REASON_CHARS = ".:!?=,;-_/()'[]%@+"


class ReferenceRefused(InvalidParameterValue):
    """A reference the policy does not fetch: 400 InvalidParameterValue, locator = the input."""

    @property
    def name(self) -> str:  # PyWPS renders the class name as exceptionCode
        return "InvalidParameterValue"


class ReferenceTooLarge(FileSizeExceeded):
    """A reference larger than ``maxsingleinputsize``: 400 FileSizeExceeded (WPS 1.0), locator = the input."""

    @property
    def name(self) -> str:
        return "FileSizeExceeded"


def reference_refusal(identifier: str, refused: FetchRefused) -> ReferenceRefused | ReferenceTooLarge:
    """The OGC exception telling a client why its input ``identifier`` is not fetched."""
    text = f"The input {identifier} is given by reference and is not fetched: {refused.reason}."
    cls = ReferenceTooLarge if refused.too_large else ReferenceRefused
    return cls(text, identifier)


_PYWPS_URL_FILE = pywps_basic.UrlHandler.file.fget
_PYWPS_URL_SIZE = pywps_basic.UrlHandler.size.fget
_PYWPS_URL_HANDLER = pywps_basic.ComplexInput.url_handler
_PYWPS_PROCESS = pywps_basic.ComplexInput.process


def _fetched_file(handler: Any) -> str:
    """``UrlHandler.file``: the reference fetched under the policy into the input's work directory.

    Unlike PyWPS's, it remembers the file only once the fetch succeeded (PyWPS
    kept the name of a half-written file for the next read) and removes a
    partial file.
    """
    if handler._file is not None:
        return handler._file
    inpt = handler._ref()
    identifier = str(getattr(inpt, "identifier", "") or "")
    path = inpt._build_file_name(href=handler.url)
    data = handler.post_data
    try:
        with open(path, "wb") as out:
            active_policy().fetch(handler.url, out, int(handler.max_size()), "POST" if data is not None else "GET",
                                  data)
    except FetchRefused as e:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise reference_refusal(identifier, e) from None
    handler._file = path
    return path


def _fetched_size(handler: Any) -> int:
    """``UrlHandler.size``: PyWPS asked the server again (a second, unchecked GET); here the fetched file's size."""
    return os.stat(_fetched_file(handler)).st_size


def _url_handler(self: Any, inpt: Mapping[str, Any]) -> Any:
    """``ComplexInput.url_handler`` without PyWPS's unchecked fetch of a POST body reference at parse time.

    The request's method, body and body reference stay in ``self.inpt`` (PyWPS
    keeps the parsed input there); :func:`check_references` decides on them.
    """
    return inpt.get("href")


def _process(self: Any, inpt: Mapping[str, Any]) -> Any:
    """``ComplexInput.process``, with a refused file:// reference left to :func:`check_references`.

    PyWPS answers a file:// reference outside ``[server] allowedinputpaths``
    while it parses the request, with its own code FileURLNotSupported and no
    locator. Here such a reference is kept as a URL, so Execute refuses it as
    it refuses every other reference (InvalidParameterValue naming the input)
    and removes the request's work directory. Paths the operator allows there
    are still linked by PyWPS.
    """
    href = inpt.get("href")
    if href and urlsplit(str(href)).scheme.lower() == "file":
        try:
            self._validate_file_input(href=href)
        except FileURLNotSupported:
            self.inpt = inpt
            self.url = href
            return None
    return _PYWPS_PROCESS(self, inpt)


def _wrapping(original: Callable[..., Any], replacement: Callable[..., Any]) -> Callable[..., Any]:
    replacement.__wrapped__ = original  # type: ignore[attr-defined]
    return replacement


def install_reference_fetching() -> None:
    """Put the policy in PyWPS's fetching of inputs by reference (idempotent)."""
    url_handler = pywps_basic.UrlHandler
    if getattr(url_handler.file.fget, "__wrapped__", None) is _PYWPS_URL_FILE:
        return
    url_handler.file = property(_wrapping(_PYWPS_URL_FILE, _fetched_file))  # type: ignore[method-assign,assignment]
    url_handler.size = property(_wrapping(_PYWPS_URL_SIZE, _fetched_size))  # type: ignore[method-assign,assignment]
    complex_input = pywps_basic.ComplexInput
    complex_input.url_handler = _wrapping(_PYWPS_URL_HANDLER, _url_handler)  # type: ignore[method-assign]
    complex_input.process = _wrapping(_PYWPS_PROCESS, _process)  # type: ignore[method-assign]


def check_references(process: Any, wps_request: Any, fetch_now: bool) -> None:
    """Refuse, before the job is accepted, every input reference the policy would not fetch.

    Checks scheme and addresses of each reference and its method (GET, or
    POST where the process lists the input in ``post_reference_inputs``);
    with ``fetch_now`` (synchronous requests) it also fetches them, so the
    redirects, the size and the timeouts are judged before the answer is
    started. A POST body given by reference is fetched here, under the policy.
    On refusal the request's work directory is removed and the OGC exception
    raised.
    """
    try:
        for identifier, values in (getattr(wps_request, "inputs", None) or {}).items():
            for inpt in values:
                if not isinstance(inpt, pywps_basic.ComplexInput) or inpt.prop != "url":
                    continue
                _check_reference(process, str(identifier), inpt, fetch_now)
    except (ReferenceRefused, ReferenceTooLarge):
        process.clean()
        raise


def _check_reference(process: Any, identifier: str, inpt: Any, fetch_now: bool) -> None:
    policy = active_policy()
    raw = inpt.inpt if isinstance(inpt.inpt, Mapping) else {}
    method = str(raw.get("method") or getattr(inpt, "method", "") or "GET").upper()
    try:
        if method == "POST":
            if identifier not in getattr(process, "post_reference_inputs", frozenset()):
                raise FetchRefused("the service fetches it with GET only (this process does not allow POST for it)")
            if "body" in raw:
                inpt.post_data = raw["body"]
            elif "bodyreference" in raw:
                policy.check(str(raw["bodyreference"]))
                with open(inpt._build_file_name(href=str(raw["bodyreference"])), "w+b") as body:
                    policy.fetch(str(raw["bodyreference"]), body, int(pywps_basic.UrlHandler.max_size()))
                    body.seek(0)
                    inpt.post_data = body.read()
            else:
                raise FetchRefused("a POST reference needs a Body or a BodyReference")
        elif method != "GET":
            raise FetchRefused(f"the method {method[:20]!r} is not used for references; only GET")
        policy.check(str(inpt.url))
    except FetchRefused as e:
        raise reference_refusal(identifier, e) from None
    if fetch_now:
        inpt.file  # noqa: B018 - the fetch, under the policy (_fetched_file)


install_reference_fetching()


# -- PyWPS's database sessions, from a pool ------------------------------------------------------
#
# PyWPS 4.8's ``dblog.get_session`` binds its sessions to an engine with
# ``NullPool``: every session opens a new connection, and with PostgreSQL over
# TLS and SCRAM that is a TLS handshake and a PBKDF2 round on both sides each
# time. A trivial job's launcher opened 19 connections (0.34 s of its 1.2 s of
# CPU on the demo), and each Execute on the web host several more. Sessions
# here come from a small pool per process instead; the pool pings a
# connection before handing it out (``pool_pre_ping``), so one that a
# PostgreSQL restart closed is replaced, and a database that stays away still
# raises the same ``OperationalError`` as a failed connect did. SQLite (the
# tests' and a single-host setup's database) keeps PyWPS's own engine.

#: Connections each process keeps (and may open beyond that): a gunicorn sync
#: worker or a launcher holds at most two sessions at once (its heartbeat's and
#: the main thread's).
POOL_SIZE = 2
POOL_OVERFLOW = 2
_PYWPS_GET_SESSION = dblog.get_session
_SESSION_MAKERS: dict[tuple[int, str], Any] = {}
_POOL_LOCK = threading.Lock()


def _pooled_session() -> Any:
    """PyWPS's ``get_session``, bound to this process's pooled engine of the configured database."""
    from pywps import configuration as pywps_config
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    database = pywps_config.get_config_value("logging", "database")
    if not str(database).startswith("postgresql"):
        return _PYWPS_GET_SESSION()
    key = (os.getpid(), str(database))
    maker = _SESSION_MAKERS.get(key)
    if maker is not None:
        return maker()
    with _POOL_LOCK:
        maker = _SESSION_MAKERS.get(key)
        if maker is not None:
            return maker()
        # A forked child never uses (nor closes: that would end the parent's sessions) the
        # connections it inherited; it builds its own pool, keyed by its pid.
        engine = create_engine(database, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW, pool_pre_ping=True)
        # As PyWPS's get_session does on its first session: its two tables, when missing.
        dblog.ProcessInstance.metadata.create_all(engine)
        dblog.RequestInstance.metadata.create_all(engine)
        maker = _SESSION_MAKERS[key] = sessionmaker(bind=engine)
    return maker()


def install_pooled_sessions() -> None:
    """Make PyWPS's ``dblog`` (and the job store, which shares its engine) use :func:`_pooled_session` (idempotent)."""
    dblog.get_session = _wrapping(_PYWPS_GET_SESSION, _pooled_session)


install_pooled_sessions()


# -- request logging and admission control (:mod:`.admission`) ------------------------------------
#
# PyWPS's ``Service.call`` writes a requests row (``log_request``) for every
# GetCapabilities, DescribeProcess and Execute before anything else, and the
# responses of the first two update it (``WPSResponse._update_status`` ->
# ``store_status``): with the database down even GetCapabilities answered 500.
# The row is only ever read for Execute (job state, the clean-up), so here
# discovery writes none. For an Execute, the row write is the first thing PyWPS
# does after parsing the request and before it creates the work directory
# (``prepare_process_for_execution``), which makes it the place to admit or
# refuse the job: the request is parsed already (no second parser at the
# door) and nothing exists yet that a refusal would have to remove.

#: The front door's state of the request being served (an :class:`.admission.Request`), set around each call.
CURRENT_REQUEST: contextvars.ContextVar[Any] = contextvars.ContextVar("pywps_gridengine_request", default=None)
# The uuid of the last request this thread served without a row. PyWPS's store_status of a uuid
# without a row changes nothing, yet needs the database to find that out: it is skipped for it.
_NO_ROW: contextvars.ContextVar[str | None] = contextvars.ContextVar("pywps_gridengine_no_row", default=None)
_PYWPS_LOG_REQUEST = dblog.log_request
_PYWPS_STORE_STATUS = dblog.store_status


def _log_request(uuid: Any, request: Any) -> None:
    """PyWPS's ``log_request`` for Execute only, behind the front door's admission when there is one."""
    if request.operation != "execute":
        _NO_ROW.set(str(uuid))
        return
    current = CURRENT_REQUEST.get()
    if current is None:
        _PYWPS_LOG_REQUEST(uuid, request)
    else:
        current.log_execute(uuid, request, _PYWPS_LOG_REQUEST)


def _store_status(uuid: Any, wps_status: Any, message: Any = None, status_percentage: Any = None) -> None:
    """PyWPS's ``store_status``, skipped for a request that has no row."""
    if _NO_ROW.get() == str(uuid):
        return
    _PYWPS_STORE_STATUS(uuid, wps_status, message, status_percentage)


def request_row_gone(uuid: Any) -> None:
    """Tell :func:`_store_status` that ``uuid``'s row was deleted (a refused submission): no more updates."""
    _NO_ROW.set(str(uuid))


def install_request_logging() -> None:
    """Replace the names PyWPS's service and responses call to write request rows (idempotent)."""
    service = importlib.import_module("pywps.app.Service")  # the module: pywps.app exports the class by that name
    basic = importlib.import_module("pywps.response.basic")
    service.log_request = _log_request  # type: ignore[attr-defined]
    service.store_status = _store_status  # type: ignore[attr-defined]
    basic.store_status = _store_status  # type: ignore[attr-defined]


# -- the service (:mod:`.frontdoor`) --------------------------------------------------------------


class CheckedService(Service):
    """PyWPS ``Service`` whose ``call`` reads and checks a request before anything is written.

    PyWPS 4.8's ``Service.call`` parses the request, writes its database row,
    then runs it; an exception it did not foresee in the client's request
    (``integer=inf``, an XML body without namespace, a JSON array) becomes a
    500 "No applicable error code", and a rejected Execute leaves the work
    directory it already created. Here, in PyWPS's order of steps:

    1. :meth:`parse_request` reads the request (a subclass checks the raw
       request first): whatever it raises is the client's fault, answered by
       :meth:`report` with ``client=True``; :meth:`check_request` checks it;
    2. then PyWPS's module-level ``log_request`` writes the row (looked up at
       call time, so :func:`install_request_logging` applies) and PyWPS runs the
       operation; an exception there is answered with ``client=False``;
    3. :meth:`execute` removes the work directory of an Execute that raises.

    The hooks are implemented by :class:`.frontdoor.FrontDoorService`.
    """

    def parse_request(self, http_request: Any) -> Any:
        return WPSRequest(http_request, self.preprocessors)

    def check_request(self, wps_request: Any) -> None:
        """Raise for a request that must not run."""

    def report(self, error: BaseException, client: bool) -> Any:
        """The response (a WSGI application) for ``error``."""
        raise NotImplementedError

    def call(self, http_request: Any) -> Any:
        pywps_service = importlib.import_module("pywps.app.Service")
        # Random (version 4), not PyWPS's time-and-MAC uuid1: a job id names the
        # status document and outputs under a public URL and is what a client
        # would dismiss or list by, so nobody may be able to guess another's.
        request_uuid = uuid_module.uuid4()
        try:
            wps_request = self.parse_request(http_request)
        except Exception as e:
            return self.report(e, client=True)
        try:
            self.check_request(wps_request)  # raises its refusals; anything else is a fault of the check
        except Exception as e:
            return self.report(e, client=False)
        try:
            pywps_service.log_request(request_uuid, wps_request)
            if wps_request.operation == "getcapabilities":
                response = self.get_capabilities(wps_request, request_uuid)
                response._update_status(WPS_STATUS.SUCCEEDED, "", 100)
            elif wps_request.operation == "describeprocess":
                response = self.describe(wps_request, request_uuid, wps_request.identifiers)
                response._update_status(WPS_STATUS.SUCCEEDED, "", 100)
            else:
                response = self.execute(wps_request.identifier, wps_request, request_uuid)
            return response
        except Exception as e:
            try:
                pywps_service.store_status(request_uuid, WPS_STATUS.FAILED, "Request rejected due to exception", 100)
            except Exception:
                LOGGER.exception("could not record request %s as failed", request_uuid)
            return self.report(e, client=False)

    def execute(self, identifier: Any, wps_request: Any, uuid: Any) -> Any:
        self._set_grass()
        process = self.prepare_process_for_execution(identifier)
        try:
            return self._parse_and_execute(process, wps_request, uuid)
        except BaseException:
            # Refused before any status document names this directory: nothing may stay.
            shutil.rmtree(process.workdir, ignore_errors=True)
            raise
