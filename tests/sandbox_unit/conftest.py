"""Fixtures for the sandbox unit tests."""

from __future__ import annotations

from typing import List

import pytest

from tests.sandbox_unit._support import Listener


@pytest.fixture
def listener():
    lst = Listener()
    yield lst
    lst.close()


@pytest.fixture
def make_listener():
    made: List[Listener] = []

    def make() -> Listener:
        lst = Listener()
        made.append(lst)
        return lst

    yield make
    for lst in made:
        lst.close()
