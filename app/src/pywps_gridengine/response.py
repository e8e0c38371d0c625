"""ExecuteResponse for jobs run by Grid Engine.

Works around three things PyWPS 4.8's ``ExecuteResponse`` does:

* it writes the status document in place through ``FileStorage.write``
  (truncate + write): here it is replaced atomically (:mod:`.status`);
* it overwrites every Accepted message with "PyWPS Process X accepted", so the
  "submitted as SGE job N" message never reaches the client: here the message
  is kept, and every status document of a Grid Engine job names its SGE job id;
* it knows nothing about a job being failed from outside: here each state
  change also goes through the app's job table (compare-and-set), and a job the
  reconciler already failed is not brought back to life by a late launcher
  (:class:`JobFenced` is raised instead).
"""

from __future__ import annotations

import logging
from typing import Any

from pywps import dblog
from pywps.exceptions import NoApplicableCode
from pywps.inout.storage.file import FileStorage
from pywps.response.execute import ExecuteResponse
from pywps.response.status import WPS_STATUS

from . import jobs
from .status import atomic_write

LOGGER = logging.getLogger("PYWPS")

_STATE_NAMES = {
    WPS_STATUS.ACCEPTED: jobs.ACCEPTED,
    WPS_STATUS.STARTED: jobs.STARTED,
    WPS_STATUS.SUCCEEDED: jobs.SUCCEEDED,
    WPS_STATUS.FAILED: jobs.FAILED,
}


class JobFenced(RuntimeError):
    """The job was already finished elsewhere (e.g. failed by the reconciler)."""


class GridEngineExecuteResponse(ExecuteResponse):
    """ExecuteResponse with atomic status files, SGE job id and job-table fencing.

    ``job_store`` is set when the job is tracked in the job table (jobs handed
    to Grid Engine); ``sge_job_id`` once Grid Engine accepted it.
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
        self.job_store: jobs.JobStore | None = None
        self.exec_host: str | None = None
        self._recorded_state: str | None = None

    def _update_status(self, status: int, message: str, status_percentage: int, clean: bool = True) -> None:
        """Same steps as ``ExecuteResponse._update_status``, reordered.

        The document is built first (building it stores the outputs and may
        fail), then the state change is claimed in the job table, and only then
        are PyWPS's requests table and the status file updated.
        """
        self.message = message
        self.status = status
        self.status_percentage = status_percentage
        self._update_status_doc()
        self._record_state(status, message)
        dblog.store_status(self.uuid, status, message, status_percentage)
        if self.store_status_file:
            self._update_status_file()
        if clean and status in (WPS_STATUS.SUCCEEDED, WPS_STATUS.FAILED):
            self.process.clean()

    def _record_state(self, status: int, message: str) -> None:
        if self.job_store is None:
            return
        state = _STATE_NAMES.get(status)
        if state is None or state == self._recorded_state:
            return
        if state == jobs.ACCEPTED:
            self._recorded_state = state
            return
        if not self.job_store.transition(str(self.uuid), state, message, exec_host=self.exec_host):
            raise JobFenced(f"job {self.uuid} is already finished; not moving it to {state}")
        self._recorded_state = state

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


def make_response(process: Any, wps_request: Any, uuid: Any) -> GridEngineExecuteResponse:
    return GridEngineExecuteResponse(wps_request, uuid=uuid, process=process)
