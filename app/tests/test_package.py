import tomllib
from pathlib import Path

import pywps_gridengine


def test_installed_version_matches_pyproject():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert pywps_gridengine.__version__ == pyproject["project"]["version"]
