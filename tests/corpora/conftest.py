"""Fixtures of the dataset tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """``$GARDEN_HOME`` (the local storage root) in a fresh folder under ``tmp_path``."""
    monkeypatch.setenv("GARDEN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"
