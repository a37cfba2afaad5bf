"""Fixtures of the client's tests (helpers in live.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from live import Server, serve


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """The real server with its default settings, shared by the session's live tests."""
    with serve() as running:
        yield running
