# pyexec: `make run` starts the service, `make test` runs every check.
# Both set up what they need first (scripts/setup.sh; quick when already done).

PORT ?= 8080
VENV := .venv/bin
PYTEST := $(VENV)/python -m pytest

.PHONY: setup setup-venv run test lint typecheck unit integration coverage \
	test-container bench load relock test-client relock-client test-page

# .venv and the jail's sandbox environment (root).
setup:
	@scripts/setup.sh

# .venv only (any user): enough for lint, typecheck and unit.
setup-venv:
	@scripts/setup.sh venv

# functions-framework's app under gunicorn with gunicorn.conf.py (bounded request
# lines, graceful shutdown); `functions-framework --target=handle --source=main.py`
# serves the same app too.
run: setup
	PORT=$(PORT) scripts/serve

lint: setup-venv
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .

typecheck: setup-venv
	$(VENV)/mypy

# Fast tests of pure logic: no root, no nsjail, no jail Python.
unit: setup-venv
	$(PYTEST) tests/unit

# Real jails, real HTTP (root).
integration: setup
	$(PYTEST) tests/integration

# Unit and integration in one run, with branch coverage (thresholds in pyproject.toml).
coverage: setup
	$(PYTEST) --cov --cov-report=term-missing:skip-covered tests/unit tests/integration

test: lint typecheck coverage

# The try-it page (GET /) in a real browser: Debian's chromium, headless, driven by
# Selenium against the real server (root; setup installs chromium and chromium-driver
# with apt if missing). Screenshots go to build/page/.
test-page:
	@scripts/setup.sh browser
	$(PYTEST) tests/browser

# Build the Dockerfile on a local Debian base and run it for real (podman, as root).
test-container:
	@scripts/container_test.sh

# The service on other kinds of host, each a user-mode-linux guest on this machine's own
# root: cgroup v2 only, no cgroups, ~1 GiB without cgroups (root; installs UML with apt).
# Check set and hostile load per host; HOSTS, HOSTS_DURATION (60 s) pick what runs.
.PHONY: test-hosts
test-hosts:
	@scripts/test_hosts.sh

# Latency and burst throughput of the API against bare cold Python processes.
bench: setup
	$(VENV)/python bench/bench.py

# Ramp a mix of normal, slow, failing and hostile scripts to several times capacity.
load: setup
	$(VENV)/python bench/load.py

# Re-resolve the hash-pinned lock files from requirements/*.in (service first: dev is
# constrained by it). Universal locks: they hold for Debian's 3.11 and the image's 3.12.
relock: setup-venv
	cd requirements && for name in service dev sandbox; do \
		../$(VENV)/uv pip compile --quiet --universal --generate-hashes \
			--python-version 3.11 $$name.in -o $$name.txt || exit 1; \
	done

# The Python client (clients/python): its own venv from its own hash-locked requirements
# (clients/python/scripts/setup.sh), the client installed there as `pip install
# ./clients/python` installs it, then its ruff, mypy --strict and tests. Its live tests
# start the real server (scripts/serve, root), hence `setup`.
CLIENT := clients/python
test-client: setup
	@$(CLIENT)/scripts/setup.sh
	cd $(CLIENT) && .venv/bin/ruff check . && .venv/bin/ruff format --check .
	cd $(CLIENT) && .venv/bin/mypy
	cd $(CLIENT) && .venv/bin/python -m pytest

# Re-resolve the client's locks from its pyproject.toml (with the google extra) and
# requirements/dev.in, for the oldest Python it supports (3.10).
relock-client: setup-venv
	cd $(CLIENT)/requirements && \
		../../../$(VENV)/uv pip compile --quiet --universal --generate-hashes \
			--python-version 3.10 --extra google ../pyproject.toml -o client.txt && \
		../../../$(VENV)/uv pip compile --quiet --universal --generate-hashes \
			--python-version 3.10 dev.in -o dev.txt

# The agent integrations (issue 18): PyexecCodeExecutor (google-adk) and `pyexec mcp`
# (the MCP SDK) in a venv of their own, clients/python/.venv-agents (`setup.sh agents`:
# the client's locks and the extras' own, requirements/adk.txt and mcp.txt). Then ruff,
# mypy --strict over their modules and tests, named (the client's own mypy run leaves
# them out: its venv has neither package), and tests/agents against a live server (root).
.PHONY: test-agents relock-agents
AGENT_FILES := src/pyexec_client/adk.py src/pyexec_client/mcp_server.py tests/live.py \
	tests/agents/*.py
test-agents: setup
	@$(CLIENT)/scripts/setup.sh agents
	cd $(CLIENT) && .venv-agents/bin/ruff check $(AGENT_FILES) && \
		.venv-agents/bin/ruff format --check $(AGENT_FILES)
	cd $(CLIENT) && .venv-agents/bin/mypy --python-version 3.11 $(AGENT_FILES)
	cd $(CLIENT) && .venv-agents/bin/python -m pytest tests/agents

# Re-resolve the extras' locks after the client's, keeping its pins (and its tools') for
# the packages they share, for Python 3.11 (google-adk's oldest): adk first, then mcp
# within adk's pins, so that the two install together.
relock-agents: relock-client
	cd $(CLIENT)/requirements && \
		../../../$(VENV)/uv pip compile --quiet --universal --generate-hashes \
			--python-version 3.11 --extra adk ../pyproject.toml \
			-c client.txt -c dev.txt -o adk.txt && \
		../../../$(VENV)/uv pip compile --quiet --universal --generate-hashes \
			--python-version 3.11 --extra mcp ../pyproject.toml \
			-c client.txt -c dev.txt -c adk.txt -o mcp.txt
