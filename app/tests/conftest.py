"""Shared fixtures: a throw-away PyWPS configuration with SQLite and temporary directories.

Helpers for tests (reading WPS documents, a client of the app) are in ``wpstest.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree
from pywps import configuration
from pywps.tests import WpsClient
from wpstest import app_client

from pywps_gridengine import jobs
from pywps_gridengine.config import AppConfig, load

BASE_CFG = """\
[server]
url = http://wps.test/wps
outputurl = http://wps.test/wpsoutputs
outputpath = {root}/outputs
workdir = {root}/workdir
maxsingleinputsize = 1mb
maxrequestsize = 3mb
parallelprocesses = -1
maxprocesses = -1
cleantempdir = true

[processing]
mode = {mode}
path = {root}/bin
{processing_extra}

[logging]
level = WARNING
database = sqlite:///{root}/wps.sqlite
"""


@dataclass
class WpsEnv:
    root: Path
    cfg: Path
    _config: AppConfig | None = None

    @property
    def config(self) -> AppConfig:
        """The app's configuration, loaded once by the app's own loader."""
        if self._config is None:
            self._config = load(str(self.cfg))
        return self._config

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def workdir(self) -> Path:
        return self.root / "workdir"

    def status_doc(self, uuid: str) -> etree._Element:
        return etree.fromstring((self.outputs / f"{uuid}.xml").read_bytes())


@pytest.fixture
def make_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., WpsEnv]:
    """Write pywps.cfg (``mode``, extra text appended) and load it as PyWPS would."""

    def _make(mode: str = "scheduler", extra: str = "", processing_extra: str = "") -> WpsEnv:
        for name in ("outputs", "workdir", "bin"):
            (tmp_path / name).mkdir(exist_ok=True)
        cfg = tmp_path / "pywps.cfg"
        cfg.write_text(BASE_CFG.format(root=tmp_path, mode=mode, processing_extra=processing_extra) + extra)
        monkeypatch.setenv("PYWPS_CFG", str(cfg))
        configuration.load_configuration([str(cfg)])
        return WpsEnv(tmp_path, cfg)

    monkeypatch.delenv("PYWPS_CFG", raising=False)
    yield _make
    configuration.CONFIG = None
    jobs._STORES.clear()


@pytest.fixture
def client(make_env: Callable[..., WpsEnv]) -> WpsClient:
    """WSGI test client of the app in default (local) processing mode."""
    return app_client(make_env(mode="default").config)
