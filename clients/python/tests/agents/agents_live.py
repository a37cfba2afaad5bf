"""What the agent integrations' tests share: their server's API key and cgroup parent."""

from __future__ import annotations

KEY = "agents-test-key-0123456789"
# The agent tests' server runs under a cgroup parent of its own.
CGROUP_PARENT = "pyexec-agents"
