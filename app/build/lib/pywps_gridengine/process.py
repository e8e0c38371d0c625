"""Base class of the app's processes: PyWPS ``Process`` with Grid Engine delegation."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from pywps import Process
from pywps.exceptions import OperationNotSupported, StorageNotSupported
from pywps.response.status import WPS_STATUS

from .config import processing_mode
from .response import GridEngineExecuteResponse

LOGGER = logging.getLogger("PYWPS")

SCHEDULER = "scheduler"


class GridEngineProcess(Process):
    """A PyWPS process whose asynchronous runs go to Grid Engine in scheduler mode.

    Subclasses take no constructor arguments (the launcher re-creates them from
    the job dump by class name) and may declare the resources their jobs need::

        gridengine_resources = {"h_rt": "00:10:00", "h_vmem": "1G"}

    Operators override them per process in pywps.cfg (see :mod:`.config`).

    Fixes of PyWPS 4.8 behaviour in scheduler mode:

    * ``_execute_process`` counts every Grid Engine job still running as
      a running *local* process, and past ``parallelprocesses`` stores the
      request in its own queue (lost on the exec host) or runs its pid-based
      crash clean-up (which marks cluster jobs failed because their pid is not
      on the web host). Here, in scheduler mode, every asynchronous request is
      submitted at once and Grid Engine does the queueing; synchronous requests
      run in the web worker.
    * ``launch_next_process`` pops that queue after every run, including on
      the exec host where the process has no service to launch it with: a
      no-op in scheduler mode.
    * ``setup_outputs_from_wps_request`` reads the output's ``mimetype`` key,
      which only the XML parser produces: a KVP ``ResponseDocument=
      output=@mimeType=text/csv`` was ignored. Keys are normalised first.
    * Responses are :class:`~.response.GridEngineExecuteResponse` (atomic
      status documents, SGE job id in the message).
    """

    gridengine_resources: ClassVar[Mapping[str, object]] = {}

    def setup_outputs_from_wps_request(self, wps_request: Any) -> None:
        normalise_output_choices(wps_request)
        super().setup_outputs_from_wps_request(wps_request)

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
        return self._execute_process(self.async_, wps_request, wps_response)

    def _execute_process(self, async_: bool, wps_request: Any, wps_response: Any) -> Any:
        if processing_mode() != SCHEDULER:
            return super()._execute_process(async_, wps_request, wps_response)
        wps_response._update_status(WPS_STATUS.ACCEPTED, "PyWPS Request accepted", 0)
        if async_:
            self._run_async(wps_request, wps_response)
            return wps_response
        return self._run_process(wps_request, wps_response)

    def _run_async(self, wps_request: Any, wps_response: Any) -> None:
        if processing_mode() != SCHEDULER:
            super()._run_async(wps_request, wps_response)
            return
        from .scheduler import GridEngineScheduler

        GridEngineScheduler(self, wps_request, wps_response).start()

    def launch_next_process(self) -> None:
        if processing_mode() == SCHEDULER:
            return
        super().launch_next_process()


_CHOICE_KEYS = {"mimetype": "mimetype", "asreference": "asReference", "encoding": "encoding", "schema": "schema",
                "uom": "uom"}


def normalise_output_choices(wps_request: Any) -> None:
    """Spell the output choice keys of ``wps_request.outputs`` as PyWPS reads them."""
    outputs = getattr(wps_request, "outputs", None)
    if not isinstance(outputs, dict):
        return
    for choice in outputs.values():
        if not isinstance(choice, dict):
            continue
        for key in list(choice):
            wanted = _CHOICE_KEYS.get(key.lower())
            if wanted and wanted != key and wanted not in choice:
                choice[wanted] = choice.pop(key)
