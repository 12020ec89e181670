"""Garbage-collection phases of a command (initlab.heap)."""

from __future__ import annotations

import gc

import pytest

from initlab.heap import setup_phase, young_objects_only


@pytest.fixture(autouse=True)
def _restore_gc():
    enabled = gc.isenabled()
    gc.unfreeze()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()


def test_setup_phase_collects_nothing_then_freezes_what_it_made() -> None:
    gc.enable()
    with setup_phase():
        assert not gc.isenabled()
        made = [[] for _ in range(1000)]
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    assert frozen >= len(made)  # what the phase made is out of later collections
    _young = [[] for _ in range(10)]
    assert gc.get_freeze_count() == frozen  # objects made afterwards are not


def test_setup_phase_keeps_collection_off_when_it_was_off() -> None:
    gc.disable()
    with setup_phase():
        pass
    assert not gc.isenabled()


def test_young_objects_only_releases_its_freeze_but_not_an_earlier_one() -> None:
    with young_objects_only():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0  # nothing was frozen before: all collectable again
    with setup_phase():
        pass
    before = gc.get_freeze_count()
    with young_objects_only():
        pass
    assert gc.get_freeze_count() >= before  # the set-up's freeze stays
