"""Fixtures of the agent integrations' tests (make test-agents, in .venv-agents): one
real server with an API key, shared by the session, under a cgroup parent of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agents_live import CGROUP_PARENT, KEY
from live import Server, serve


@pytest.fixture(scope="session")
def keyed_server() -> Iterator[Server]:
    """The real server with PYEXEC_API_KEYS set: a run without KEY is refused."""
    with serve(PYEXEC_API_KEYS=KEY, PYEXEC_CGROUP_PARENT=CGROUP_PARENT) as running:
        yield running
