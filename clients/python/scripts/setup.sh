#!/usr/bin/env bash
# The client's own environment, clients/python/.venv: its runtime (httpx, google-auth)
# and its test tools from the hash-locked requirements/*.txt, then the client itself,
# built from this directory as `pip install ./clients/python` builds it (not editable:
# the tests run what users get). Quick once done: the environment is rebuilt only
# when a lock file changed. Needs no root; the live-server tests do.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
PIP=(.venv/bin/pip --disable-pip-version-check --quiet)

want=$(cat requirements/client.txt requirements/dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat .venv/.installed 2>/dev/null)" != "$want" ]; then
    echo "setup: installing the client's environment in clients/python/.venv"
    rm -rf .venv
    "$PYTHON" -m venv .venv
    "${PIP[@]}" install --require-hashes --no-deps \
        -r requirements/client.txt -r requirements/dev.txt
    echo "$want" > .venv/.installed
fi
# The build backend (flit_core) comes from the lock, so nothing unlocked is fetched.
"${PIP[@]}" install --no-deps --no-build-isolation --force-reinstall .
