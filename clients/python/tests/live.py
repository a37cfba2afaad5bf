"""Helpers of the client's tests: the real pyexec server, the sample scripts, and the
``pyexec`` command as installed.

The server is the project's own, started by its tests/live_server.py (scripts/serve:
gunicorn, real nsjail jails) on a loopback port, under a cgroup parent of its own
(PYEXEC_CGROUP_PARENT=pyexec-client) so that it does not share one with the project's
test runs on the same machine. The default server is started once per session; tests
that need other settings start their own, once per module (conftest.py).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Protocol

TESTS_DIR = Path(__file__).resolve().parent
CLIENT_DIR = TESTS_DIR.parent
PROJECT_DIR = CLIENT_DIR.parent.parent
SCRIPTS_DIR = TESTS_DIR / "scripts"
SERVER_ENVIRONMENT = {"PYEXEC_CGROUP_PARENT": "pyexec-client"}
# What the CLI must not inherit from whoever runs the tests.
CLIENT_VARIABLES = ("PYEXEC_URL", "PYEXEC_API_KEY", "GOOGLE_APPLICATION_CREDENTIALS")


class Server(Protocol):
    """What the tests use of tests/live_server.py's LiveServer."""

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT``."""

    @property
    def port(self) -> int:
        """The loopback port it listens on."""


def _load_live_server() -> ModuleType:
    """The project's tests/live_server.py, loaded from its path: the client's tests
    are not part of the project's ``tests`` package (both are named tests)."""
    path = PROJECT_DIR / "tests" / "live_server.py"
    spec = importlib.util.spec_from_file_location("pyexec_live_server", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


LIVE_SERVER = _load_live_server()


def serve(**environ: str) -> contextlib.AbstractContextManager[Server]:
    """The real server with SERVER_ENVIRONMENT and ``environ``, healthy, stopped after."""
    manager: contextlib.AbstractContextManager[Server] = LIVE_SERVER.serve(
        **{**SERVER_ENVIRONMENT, **environ}
    )
    return manager


@contextlib.contextmanager
def serve_unhealthy(**environ: str) -> Iterator[str]:
    """The real server with settings under which its sandbox self-test fails: started
    as live_server.serve starts it, but awaited until /healthz says why it cannot run
    scripts (serve() waits for a healthy server, which never comes). Yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [str(PROJECT_DIR / "scripts/serve")],
        cwd=PROJECT_DIR,
        env={
            **os.environ,
            **SERVER_ENVIRONMENT,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            **environ,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_refusal(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_refusal(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5):
                raise RuntimeError("the server is healthy; expected a failed self-test")
        except urllib.error.HTTPError as refused:
            if refused.code == 503 and b"sandbox_unavailable" in refused.read():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not report its failed self-test")


def script(name: str) -> str:
    """The source of tests/scripts/<name>.py."""
    return (SCRIPTS_DIR / f"{name}.py").read_text(encoding="utf-8")


def pyexec_command() -> str:
    """The ``pyexec`` console script installed next to this interpreter."""
    found = shutil.which("pyexec", path=str(Path(sys.executable).parent))
    assert found is not None, "the client is not installed here (make test-client)"
    return found


def run_cli(
    *arguments: str,
    environ: Mapping[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``pyexec`` with ``arguments`` as a user would, through its entry point."""
    clean = {name: value for name, value in os.environ.items() if name not in CLIENT_VARIABLES}
    return subprocess.run(
        [pyexec_command(), *arguments],
        env={**clean, **(environ or {})},
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def free_port() -> int:
    """A loopback port nothing listens on now (live_server's own helper)."""
    return int(LIVE_SERVER.free_port())
