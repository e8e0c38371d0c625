"""Base class of the app's processes: PyWPS ``Process`` with Grid Engine delegation."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from .compat import SchedulerProcessMixin

LOGGER = logging.getLogger("PYWPS")


class GridEngineProcess(SchedulerProcessMixin):
    """A PyWPS process whose asynchronous runs go to Grid Engine in scheduler mode.

    Subclasses take no constructor arguments (the launcher re-creates them from
    the job dump by class name) and may declare the resources their jobs need::

        gridengine_resources = {"h_rt": "00:10:00", "h_vmem": "1G"}

    Operators override them per process in pywps.cfg (see :mod:`.config`).

    Fixes of PyWPS 4.8 behaviour in scheduler mode (the overrides of PyWPS's
    private methods are in :class:`.compat.SchedulerProcessMixin`):

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
    * Responses are :class:`~.compat.GridEngineExecuteResponse` (atomic
      status documents, SGE job id in the message, the job row decides).
    """

    gridengine_resources: ClassVar[Mapping[str, object]] = {}
    #: Whether a synchronous Execute may run this process; the front door refuses one otherwise.
    synchronous: ClassVar[bool] = True
    #: Longest a synchronous run may be expected to take, in seconds (None: the site's
    #: ``[gridengine] sync_max_runtime``; the smaller of the two applies).
    max_sync_runtime: ClassVar[float | None] = None

    def expected_runtime(self, values: Mapping[str, list[Any]]) -> float:
        """Seconds a run with these literal input values (converted, defaults included) is expected to
        take: the front door refuses a synchronous Execute expected to take longer than allowed."""
        return 0.0

    def setup_outputs_from_wps_request(self, wps_request: Any) -> None:
        normalise_output_choices(wps_request)
        super().setup_outputs_from_wps_request(wps_request)
        if wps_request.raw:
            apply_raw_format(self, wps_request)


_CHOICE_KEYS = {"mimetype": "mimetype", "asreference": "asReference", "encoding": "encoding", "schema": "schema",
                "uom": "uom"}


def apply_raw_format(process: Any, wps_request: Any) -> None:
    """The mimeType a RawDataOutput names, for a complex output: PyWPS applies it only to
    ResponseDocument outputs, so a raw answer came in the default format. The front door has
    checked that the output declares it."""
    for identifier, choice in (wps_request.outputs or {}).items():
        mime = choice.get("mimetype") if isinstance(choice, dict) else None
        for output in process.outputs:
            if output.identifier == identifier and mime and hasattr(output, "supported_formats"):
                matching = [f for f in output.supported_formats if f.mime_type == mime]
                if matching:
                    output.data_format = matching[0]


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
