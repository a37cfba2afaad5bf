"""Running it in production: admission control (503), API keys, the structured log
line, settings that never show keys, and a real SIGTERM leaving no jail behind."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from pyexec.answers import Outcome
from pyexec.api import Service
from pyexec.logs import JsonFormatter, trace_fields
from pyexec.settings import load_settings
from tests.support import PROJECT_DIR, call, check_schema, script

KEY = "k" * 24


def wait_healthy(service: Service) -> None:
    """Block until the service's self-test has passed."""
    health = service.executor.wait_health(timeout=120)
    assert health is not None
    assert health.ok


def test_overload_gets_503_with_retry_after_and_no_lost_request() -> None:
    settings = load_settings(
        {"PYEXEC_MAX_CONCURRENT": "1", "PYEXEC_QUEUE_WAIT": "0.3", "PYEXEC_POOL_SIZE": "0"}
    )
    service = Service(settings)
    wait_healthy(service)
    answers: dict[str, Outcome] = {}

    def slow() -> None:
        answers["slow"] = call(service, {"script": script("sleep_two_seconds")})

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.8)
    busy = call(service, {"script": script("hello")})
    thread.join()
    assert busy.status == 503
    check_schema(503, busy.body)
    assert busy.body["kind"] == "overloaded"
    assert "maximum of 1 scripts" in busy.body["error"]
    assert dict(busy.headers)["Retry-After"] == "1"
    assert answers["slow"].status == 200
    assert answers["slow"].body["result"] == "slept"
    after = call(service, {"script": script("hello")})
    assert (after.status, after.body["result"]) == (200, {"hello": "world"})
    service.executor.shutdown()


def test_shutdown_refuses_new_work_and_kills_running_jails() -> None:
    settings = load_settings({"PYEXEC_POOL_SIZE": "1", "PYEXEC_SHUTDOWN_GRACE": "0.5"})
    service = Service(settings)
    wait_healthy(service)
    assert service.executor.pools.wait_full(timeout=60)
    answers: dict[str, Outcome] = {}

    def forever() -> None:
        answers["running"] = call(service, {"script": script("sleep_forever")})

    thread = threading.Thread(target=forever)
    thread.start()
    time.sleep(1)
    started = time.monotonic()
    service.executor.shutdown()
    thread.join(timeout=15)
    assert time.monotonic() - started < 10
    assert answers["running"].status == 503
    assert answers["running"].body["kind"] == "shutting_down"
    refused = call(service, {"script": script("hello")})
    assert (refused.status, refused.body["kind"]) == (503, "shutting_down")
    assert service.executor.pools.idle_counts() == {"light": 0, "heavy": 0}


@pytest.fixture
def with_api_keys(service: Service) -> Iterator[None]:
    """The app's service with PYEXEC_API_KEYS set, for the duration of a test."""
    original = service.settings
    service.settings = dataclasses.replace(original, api_keys=(KEY, "x" * 20))
    yield
    service.settings = original


@pytest.mark.usefixtures("with_api_keys")
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-key-wrong-key"}, 401),
        ({"Authorization": f"Bearer {KEY}x"}, 401),
        ({"X-API-Key": KEY[:-1]}, 401),
        ({"Authorization": f"Bearer {KEY}"}, 200),
        ({"Authorization": f"bearer {KEY}"}, 200),
        ({"X-API-Key": KEY}, 200),
    ],
)
def test_api_keys_when_configured(
    app_client: FlaskClient, headers: dict[str, str], status: int
) -> None:
    response = app_client.post("/execute", json={"script": script("hello")}, headers=headers)
    assert response.status_code == status
    body = response.get_json()
    check_schema(status, body)
    if status == 401:
        assert body["kind"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="pyexec"'
        assert KEY not in json.dumps(body)
    # /healthz stays open for probes.
    assert app_client.get("/healthz").status_code == 200


def test_no_api_keys_means_no_check(app_client: FlaskClient) -> None:
    response = app_client.post("/execute", json={"script": script("hello")})
    assert response.status_code == 200


def test_keys_never_appear_in_settings_output() -> None:
    settings = load_settings({"PYEXEC_API_KEYS": f"{KEY}, {'y' * 16}"})
    assert settings.api_keys == (KEY, "y" * 16)
    assert KEY not in repr(settings)
    assert KEY not in json.dumps(settings.public(), default=str)
    assert settings.public()["api_keys"] == 2
    with pytest.raises(ValueError, match="at least 16 characters"):
        load_settings({"PYEXEC_API_KEYS": "short"})


def test_one_structured_log_line_per_request(
    app_client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    # at_level attaches the capturing handler to this logger ("pyexec" does not propagate).
    with caplog.at_level(logging.INFO, logger="pyexec.request"):
        source = 'def main():\n    print("secret output")\n    return "secret result"\n'
        response = app_client.post(
            "/execute",
            json={"script": source},
            headers={"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/42;o=1"},
        )
    lines = [r for r in caplog.records if r.name == "pyexec.request"]
    assert len(lines) == 1
    entry = json.loads(JsonFormatter().format(lines[0]))
    assert entry["severity"] == "INFO"
    assert entry["message"] == "POST /execute 200 ok"
    assert entry["request_id"] == response.headers["X-Request-Id"]
    assert entry["logging.googleapis.com/trace"] == "105445aa7843bc8bf206b12000100000"
    assert entry["logging.googleapis.com/spanId"] == "42"
    assert entry["httpRequest"]["status"] == 200
    assert entry["httpRequest"]["latency"].endswith("s")
    assert entry["kind"] == "ok"
    assert entry["script_chars"] == len(source)
    assert set(entry["usage"]) == {"wall_time_ms", "cpu_time_ms", "peak_memory_bytes"}
    text = json.dumps(entry)
    assert "secret" not in text
    assert "def main" not in text


def test_trace_field_names_the_project_when_known() -> None:
    fields = trace_fields("abc123/7;o=0", "my-project")
    assert fields["logging.googleapis.com/trace"] == "projects/my-project/traces/abc123"
    assert "logging.googleapis.com/trace_sampled" not in fields
    assert trace_fields("not a trace!/x", "p") == {}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def served(**environ: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The real server (scripts/serve: gunicorn + gunicorn.conf.py) on a loopback port,
    healthy; killed afterwards if the test did not stop it."""
    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), **environ}
    server = subprocess.Popen(
        [str(PROJECT_DIR / "scripts/serve")],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{base}/healthz", timeout=5) as answer,
            ):
                if answer.status == 200:
                    break
            time.sleep(0.2)
        yield server, base
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_a_stalled_body_gets_408_and_does_not_block_others() -> None:
    with served(PYEXEC_BODY_TIMEOUT="1") as (_, base):
        port = int(base.rsplit(":", 1)[1])
        stalled = []
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(
                b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"scr'
            )
            stalled.append(sock)
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as answer:
            assert answer.status == 200
        for sock in stalled:
            sock.settimeout(10)
            reply = b""
            while b"}" not in reply:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
            sock.close()
            head, _, body = reply.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408")
            answer_body = json.loads(body)
            check_schema(408, answer_body)
            assert answer_body["kind"] == "request_timeout"


def test_sigterm_leaves_no_jail_behind() -> None:
    """The real server (gunicorn + gunicorn.conf.py): SIGTERM while a script runs and
    the pool is full; afterwards no process of its jails exists."""
    marker = f"pyexec-sigterm-{uuid.uuid4().hex[:8]}"

    jailed: set[int] = set()

    def jail_processes() -> list[str]:
        """This server's nsjail processes (their args name the cgroup parent), and
        every process that was seen inside one of its jails."""
        listing = subprocess.run(
            ["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True, check=True
        ).stdout
        found = []
        for line in listing.splitlines():
            pid = int(line.split(None, 1)[0])
            if marker in line:
                found.append(line[:80])
                children = f"/proc/{pid}/task/{pid}/children"
                if os.path.exists(children):
                    with open(children) as handle:
                        jailed.update(int(child) for child in handle.read().split())
            elif pid in jailed:
                found.append(line[:80])
        return found

    answers: dict[str, Any] = {}
    with served(
        PYEXEC_CGROUP_PARENT=marker,
        PYEXEC_SHUTDOWN_GRACE="4",
        PYEXEC_POOL_SIZE="2",
        PYEXEC_LIGHT_POOL_SIZE="2",
    ) as (server, base):
        deadline = time.monotonic() + 60
        pool: dict[str, int] = {}
        while pool != {"light": 2, "heavy": 2} and time.monotonic() < deadline:
            with urllib.request.urlopen(f"{base}/healthz", timeout=5) as answer:
                pool = json.load(answer)["pool"]
            time.sleep(0.2)
        assert pool == {"light": 2, "heavy": 2}

        def post(name: str) -> None:
            request = urllib.request.Request(
                f"{base}/execute",
                data=json.dumps({"script": script(name)}).encode(),
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    answers[name] = (answer.status, json.load(answer))
            except urllib.error.HTTPError as refused:
                answers[name] = (refused.code, json.load(refused))
            except OSError as lost:
                answers[name] = (None, str(lost))

        threads = [
            threading.Thread(target=post, args=(name,))
            for name in ("sleep_two_seconds", "sleep_forever")
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.7)
        assert len(jail_processes()) >= 6  # 4 pooled (2 refilling) + 2 running
        assert len(jailed) >= 5
        server.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=30)
        server.wait(timeout=30)
    # A script that finishes within the grace period gets its answer.
    assert answers["sleep_two_seconds"][0] == 200
    assert answers["sleep_two_seconds"][1]["result"] == "slept"
    # One that does not is stopped: no answer, or a 503 shutting_down.
    assert answers["sleep_forever"][0] in (None, 503)
    deadline = time.monotonic() + 10
    while jail_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert jail_processes() == []
    for controller in ("memory", "pids", "cpu"):
        parent = f"/sys/fs/cgroup/{controller}/{marker}"
        if os.path.isdir(parent):
            assert [p for p in os.listdir(parent) if p.startswith("NSJAIL.")] == []
            os.rmdir(parent)


def test_memory_budget_bounds_the_sum_of_running_jails() -> None:
    settings = load_settings(
        {
            "PYEXEC_MEMORY_BUDGET_MB": "768",
            "PYEXEC_MAX_MEMORY_MB": "512",
            "PYEXEC_QUEUE_WAIT": "0.3",
            "PYEXEC_POOL_SIZE": "0",
        }
    )
    service = Service(settings)
    wait_healthy(service)
    answers: dict[str, Outcome] = {}

    def big() -> None:
        answers["big"] = call(service, {"script": script("sleep_two_seconds"), "memory_mb": 512})

    thread = threading.Thread(target=big)
    thread.start()
    time.sleep(0.8)
    second = call(service, {"script": script("hello"), "memory_mb": 512})
    small = call(service, {"script": script("hello")})  # 256 MB still fits
    thread.join()
    assert (second.status, second.body["kind"]) == (503, "overloaded")
    assert "768 MB" in second.body["error"]
    assert small.status == 200
    assert answers["big"].status == 200
    service.executor.shutdown()
