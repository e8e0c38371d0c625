"""Shared fixtures: a throw-away PyWPS configuration with SQLite and temporary directories.

``postgres`` is a throw-away PostgreSQL server (the server binaries of this
machine, ``initdb``/``pg_ctl``, a Unix socket in a temporary directory, no
TCP) for what only PostgreSQL shows: skipped where there is none.

Helpers for tests (reading WPS documents, a client of the app) are in ``wpstest.py``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
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


def _server_bin() -> Path | None:
    """The directory of this machine's PostgreSQL server programs, if any."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out and Path(out, "initdb").exists() and Path(out, "pg_ctl").exists():
            return Path(out)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    return None


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A throw-away PostgreSQL server (as the ``postgres`` user when the tests run as root): its SQLAlchemy URL."""
    bindir = _server_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server programs (initdb, pg_ctl) on this machine")
    try:
        import psycopg2  # noqa: F401  (the driver the role's venv uses)
    except ImportError:
        pytest.skip("psycopg2 is not installed")
    run_as: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="pwg-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base)
            pytest.skip("running as root and there is no postgres user to run the server as")
        runuser = shutil.which("runuser")
        if runuser is None:
            shutil.rmtree(base)
            pytest.skip("running as root without runuser")
        os.chown(base, owner.pw_uid, owner.pw_gid)
        run_as = [runuser, "-u", "postgres", "--"]
    data, log = base / "data", base / "server.log"
    started = False
    try:
        subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                        "--no-sync"], capture_output=True, text=True, check=True, timeout=120)
        options = f"-c listen_addresses='' -c unix_socket_directories={base} -c fsync=off -p 5432"
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w",
                        "-t", "60", "start"], capture_output=True, text=True, check=True, timeout=90)
        started = True
        yield f"postgresql+psycopg2://postgres@/postgres?host={base}&port=5432"
    except subprocess.CalledProcessError as e:
        pytest.skip(f"throw-away PostgreSQL did not start: {(e.stderr or e.stdout).strip()[-300:]}")
    finally:
        if started:
            subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, check=False, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
