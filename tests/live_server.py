"""The real server on a loopback port: ``scripts/serve`` (gunicorn + gunicorn.conf.py).

Used by the integration tests' ``live_server`` fixture and by the benchmarks, so both
run exactly what ``make run`` and the image run.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class LiveServer:
    """A running server: its process, port and base URL, and JSON helpers."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 10) -> tuple[int, Any]:
        """GET ``path``: (status, JSON body)."""
        return self._open(urllib.request.Request(f"{self.base}{path}"), timeout)

    def post(self, path: str, body: Any, timeout: float = 60) -> tuple[int, Any]:
        """POST ``body`` as JSON: (status, JSON body)."""
        request = urllib.request.Request(
            f"{self.base}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        return self._open(request, timeout)

    @staticmethod
    def _open(request: urllib.request.Request, timeout: float) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as refused:
            return refused.code, json.load(refused)

    def wait_healthy(self, timeout: float = 120) -> None:
        """Block until /healthz answers 200 (the self-test has passed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}")
            with contextlib.suppress(OSError):
                if self.get("/healthz", timeout=5)[0] == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError("the server did not become healthy")

    def wait_answering(self, timeout: float = 120) -> None:
        """Block until /healthz answers at all, healthy or not (a server whose
        sandbox cannot run answers 503 ``sandbox_unavailable``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}")
            with contextlib.suppress(OSError):
                if self.get("/healthz", timeout=5)[1].get("kind") != "starting":
                    return
            time.sleep(0.2)
        raise RuntimeError("the server did not finish its self-test")


@contextlib.contextmanager
def serve(**environ: str) -> Iterator[LiveServer]:
    """Start the server with ``environ`` added, wait until it is healthy, and always
    stop it afterwards: SIGTERM (its graceful shutdown), SIGKILL if that takes over
    a minute (its jails die with it either way)."""
    with _serving(environ, healthy=True) as server:
        yield server


@contextlib.contextmanager
def serve_unhealthy(**environ: str) -> Iterator[LiveServer]:
    """As serve, for a server whose self-test is meant to fail: wait until it has
    ended (/healthz answers other than ``starting``) instead."""
    with _serving(environ, healthy=False) as server:
        yield server


@contextlib.contextmanager
def serve_checkout(project: Path, **environ: str) -> Iterator[LiveServer]:
    """As serve, for another checkout of the project (bench/compare.py): its own
    scripts/serve, with this checkout's venv first on PATH (a git worktree has none)."""
    path = f"{PROJECT_DIR / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    with _serving({"PATH": path, **environ}, healthy=True, project=project) as server:
        yield server


@contextlib.contextmanager
def _serving(
    environ: dict[str, str], healthy: bool, project: Path = PROJECT_DIR
) -> Iterator[LiveServer]:
    port = free_port()
    process = subprocess.Popen(
        [str(project / "scripts/serve")],
        cwd=project,
        env={**os.environ, "HOST": "127.0.0.1", "PORT": str(port), **environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = LiveServer(process, port)
    try:
        if healthy:
            server.wait_healthy()
        else:
            server.wait_answering()
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
