"""Shared fixtures: example arm files, an isolated calibration store."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARMS = ROOT / "examples" / "arms"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own empty calibration store."""
    monkeypatch.setenv("RMSKILL_HOME", str(tmp_path / "rmskill-home"))


@pytest.fixture
def ur5e_file() -> Path:
    return ARMS / "sim-ur5e.yaml"


@pytest.fixture
def fr3_file() -> Path:
    return ARMS / "sim-fr3.yaml"
