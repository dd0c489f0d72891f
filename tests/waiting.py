"""The one way a test waits for something: poll a condition until it holds, with a timeout.

Tests never sleep a fixed time hoping that something has happened meanwhile: on a busy machine
it may not have, and on an idle one the sleep is wasted.  They call :func:`wait_until` instead,
with a timeout generous enough for a loaded machine (it only costs time when the test fails).
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

import pytest

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, interval: float = 0.05,
               message: str = "") -> T:
    """Call ``condition`` every ``interval`` seconds until it returns something truthy, and return
    that; fail the test with ``message`` when ``timeout`` seconds pass first.

    The condition may raise to give up early (e.g. an assertion that the process it waits on is
    still running).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"not within {timeout:g} s: {message or getattr(condition, '__name__', condition)}")
        time.sleep(interval)
