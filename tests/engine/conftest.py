"""Fixtures shared by the engine tests."""

import pytest

from tests.engine.memorized import save_memorised


@pytest.fixture(scope="module")
def memorised_dir(tmp_path_factory):
    """A tiny model that has memorised FORGET + RETAIN (tests/engine/memorized.py), per module."""
    return save_memorised(tmp_path_factory.mktemp("memorised") / "model")
