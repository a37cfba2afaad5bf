#!/usr/bin/env bash
# The client's own environment, clients/python/.venv: its runtime (httpx, google-auth)
# and its test tools from the hash-locked requirements/*.txt, then the client itself,
# built from this directory as `pip install ./clients/python` builds it (not editable:
# the tests run what users get). Quick once done: the environment is rebuilt only
# when a lock file changed. Needs no root; the live-server tests do.
#
# `setup.sh agents` builds clients/python/.venv-agents the same way, with the agent
# extras' locks too (requirements/mcp.txt and adk.txt, which agree with client.txt and
# dev.txt on every package they share): make test-agents.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
LOCKS=(requirements/client.txt requirements/dev.txt)
if [ "${1:-}" = agents ]; then
    VENV=.venv-agents
    LOCKS+=(requirements/mcp.txt requirements/adk.txt)
elif [ $# -gt 0 ]; then
    echo "usage: $0 [agents]" >&2
    exit 2
fi
PIP=("$VENV/bin/pip" --disable-pip-version-check --quiet)

want=$(cat "${LOCKS[@]}" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing the client's environment in clients/python/$VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "${PIP[@]}" install --require-hashes --no-deps "${LOCKS[@]/#/-r}"  # -rFILE each
    echo "$want" > "$VENV/.installed"
fi
# The build backend (flit_core) comes from the lock, so nothing unlocked is fetched.
"${PIP[@]}" install --no-deps --no-build-isolation --force-reinstall .
