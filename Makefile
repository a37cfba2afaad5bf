# pyexec: `make run` starts the service, `make test` runs every check.
# Both set up what they need first (scripts/setup.sh; quick when already done).

PORT ?= 8080
VENV := .venv/bin

.PHONY: setup run test lint typecheck pytest test-container bench load

setup:
	@scripts/setup.sh

# functions-framework's app under gunicorn with gunicorn.conf.py (bounded request
# lines, graceful shutdown); `functions-framework --target=handle --source=main.py`
# serves the same app too.
run: setup
	PORT=$(PORT) scripts/serve

lint: setup
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .

typecheck: setup
	$(VENV)/mypy

pytest: setup
	$(VENV)/pytest

test: lint typecheck pytest

# Build the Dockerfile on a local Debian base and run it for real (podman, as root).
test-container:
	@scripts/container_test.sh

# Latency and burst throughput of the API against bare cold Python processes.
bench: setup
	$(VENV)/python bench/bench.py

# Ramp a mix of normal, slow, failing and hostile scripts to several times capacity.
load: setup
	$(VENV)/python bench/load.py
