"""Packaging: the declared licence ships as a file, and every requirement has a floor that
.ci/check_floors.sh can install (that script installs them all and runs the smoke tests)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml")


def test_license_file_is_the_apache_2_text():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"


def test_every_requirement_has_an_installable_floor():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = subprocess.run([sys.executable, str(ROOT / ".ci" / "floors.py"), "--skip", "torch"],
                         capture_output=True, text=True, check=True).stdout.split()
    pins = dict(p.split("==") for p in out)
    # the floors .ci/check_floors.sh found to work together (SB3 2.6 caps gymnasium below
    # 1.2, whose MujocoEnv the ant needs)
    assert pins["stable-baselines3"] == pins["sb3-contrib"] == "2.7"
    assert pins["gymnasium"] == "1.2" and pins["mujoco"] == "3.5"
    assert "ray" in pins and "pygame" in pins
    names = {r.split(">=")[0] for r in project["dependencies"]} - {"torch"}
    assert names <= set(pins)
    extras = project["optional-dependencies"]
    assert "internal-rl[minari,ray,human]" in extras["dev"]  # make test installs the extras
