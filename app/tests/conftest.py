"""Shared fixtures: a throw-away PyWPS configuration with SQLite and temporary directories."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree
from pywps import configuration
from werkzeug.test import Client

NS = {
    "wps": "http://www.opengis.net/wps/1.0.0",
    "ows": "http://www.opengis.net/ows/1.1",
    "xlink": "http://www.w3.org/1999/xlink",
}

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


@pytest.fixture
def client(make_env: Callable[..., WpsEnv]) -> Client:
    """WSGI test client of the app in default (local) processing mode."""
    from pywps_gridengine.wsgi import create_service, make_app

    env = make_env(mode="default")
    return Client(make_app(create_service(str(env.cfg))))


def xml(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def status_of(doc: etree._Element) -> str:
    status = doc.find("wps:Status", NS)
    assert status is not None, etree.tostring(doc)
    return etree.QName(status[0]).localname


def status_text(doc: etree._Element) -> str:
    status = doc.find("wps:Status", NS)
    return " ".join(status.itertext()).strip()


def literal_output(doc: etree._Element, identifier: str) -> str:
    for out in doc.iterfind(".//wps:ProcessOutputs/wps:Output", NS):
        if out.findtext("ows:Identifier", namespaces=NS) == identifier:
            return out.findtext(".//wps:LiteralData", namespaces=NS)
    raise AssertionError(f"no output {identifier}: {etree.tostring(doc)}")


def output_element(doc: etree._Element, identifier: str) -> etree._Element:
    for out in doc.iterfind(".//wps:ProcessOutputs/wps:Output", NS):
        if out.findtext("ows:Identifier", namespaces=NS) == identifier:
            return out
    raise AssertionError(f"no output {identifier}: {etree.tostring(doc)}")


def uuid_from_status_location(doc: etree._Element) -> str:
    location = doc.get("statusLocation")
    return os.path.basename(location)[: -len(".xml")]
