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

    def setup_outputs_from_wps_request(self, wps_request: Any) -> None:
        normalise_output_choices(wps_request)
        super().setup_outputs_from_wps_request(wps_request)


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
