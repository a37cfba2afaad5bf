"""Adversarial tests: each hostile script gets its specific outcome, and nothing survives it.

Every test here uses ``leaves_nothing_behind``: afterwards no process of the jail
uid or nsjail is alive, and the service still answers a normal request.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from pyexec.api import Service
from tests.integration.host import JailCensus, jail_uids
from tests.support import (
    CANARY,
    JAIL_TMP_FILES,
    PROJECT_DIR,
    Api,
    check_schema,
    core,
    script,
    wait_until,
)

pytestmark = pytest.mark.usefixtures("leaves_nothing_behind")


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A real TCP listener on the host's loopback, standing in for the service port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    server.settimeout(0.2)

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept)
    thread.start()
    yield server.getsockname()[1]
    thread.join()
    server.close()
    assert accepted == [], "the jail reached a port on the host's loopback"


def test_no_network_at_all(api: Api, listening_port: int) -> None:
    status, body = api.run_file("net_outbound", PORT=str(listening_port))
    assert status == 200
    result = body["result"]
    # seccomp refuses every socket family except AF_UNIX; the empty network
    # namespace stands behind it.
    for attempt in ("public_ip", "metadata", "loopback_service", "udp", "ipv6", "raw", "netlink"):
        assert result[attempt] in ("PermissionError", "URLError"), attempt
    assert result["dns"] in ("gaierror", "PermissionError")
    assert result["unix_pair"] == "CONNECTED"
    assert result["addresses"] == ""  # not even loopback is up


def test_no_secrets_environment_or_service_files(api: Api) -> None:
    status, body = api.run_file(
        "secrets_and_env",
        SERVICE_MAIN=str(PROJECT_DIR / "main.py"),
        SERVICE_DIR=str(PROJECT_DIR),
    )
    assert status == 200
    result = body["result"]
    assert CANARY not in str(result)
    assert set(result["environ"]) <= {
        "PATH",
        "HOME",
        "LANG",
        "PYTHONIOENCODING",
        "PYTHONDONTWRITEBYTECODE",
        "MPLCONFIGDIR",
        "MPLBACKEND",
        "OPENBLAS_NUM_THREADS",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "LC_CTYPE",
    }
    assert result["environ"]["OPENBLAS_NUM_THREADS"] == "1"
    assert result["shadow"] == "FileNotFoundError"
    assert result["passwd"] == "FileNotFoundError"
    assert result["service_main"] == "FileNotFoundError"
    assert result["service_dir_exists"] is False
    assert result["root_entries"] == [
        "bin",
        "data",
        "dev",
        "lib",
        "lib64",
        "opt",
        "proc",
        "tmp",
        "usr",
    ]
    assert result["opt_entries"] == ["sandbox"]
    assert set(result["usr_entries"]) <= {"bin", "lib", "lib64", "local"}
    assert result["usr_local_etc"] is False
    assert (result["proc_cmdline"], result["proc_keys"], result["proc_loadavg"]) == (
        ("FileNotFoundError",) * 3
    )
    assert result["proc_pressure"] == []
    assert (result["uid"], result["gid"]) == (65534, 65534)
    for line in result["cap_lines"]:
        if not line.startswith("CapBnd"):
            assert line.split()[1] == "0000000000000000", line
    assert result["proc_pids"] == [1]
    assert result["sys_exists"] is False
    assert result["hostname"] == "pyexec"


def test_the_script_holds_no_fd_of_the_runner_s_code(api: Api) -> None:
    """Every jail reads the runner's code from one memfd of the service's: the fd is
    closed before the script runs, so the script sees only its stdio and the runner's
    two pipes."""
    status, body = api.run(
        "import os\n\n\ndef main():\n"
        "    links = {}\n"
        "    for name in os.listdir('/proc/self/fd'):\n"
        "        try:\n"
        "            links[name] = os.readlink(f'/proc/self/fd/{name}')\n"
        "        except OSError as exc:\n"
        "            links[name] = type(exc).__name__\n"
        "    return links\n"
    )
    assert status == 200
    links = body["result"]
    assert not [target for target in links.values() if "memfd" in target], links
    pipes = [target for target in links.values() if target.startswith("pipe:")]
    assert len(pipes) >= 2, links  # the listing is real: stdout, stderr, the runner's
    assert len(links) <= 6, links  # 0-2, control, result, the listing's own fd


def test_nsjail_runs_with_an_empty_environment(api: Api) -> None:
    """The service's secrets never reach even nsjail's own process (a jail gets only
    nsjail.cfg's envar lines in any case)."""
    assert os.environ["PYEXEC_TEST_CANARY"] == CANARY  # the service has a secret
    assert api.run("def main():\n    return 1\n")[0] == 200  # the pool is up
    environments = []
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            # A jail that answered may be gone by now: only the living are read.
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == "nsjail":
                    environments.append(Path(f"/proc/{pid}/environ").read_bytes())
    assert environments  # the pool's jails, started by this process
    assert set(environments) == {b""}


def test_nothing_outside_tmp_is_writable(api: Api) -> None:
    status, body = api.run_file("write_outside_tmp")
    assert status == 200
    for target, outcome in body["result"].items():
        assert outcome in ("OSError", "PermissionError", "FileNotFoundError"), target


def test_no_state_passes_from_one_request_to_the_next(api: Api) -> None:
    status, body = api.run_file("state_write")
    assert (status, body["result"]) == (200, sorted([*JAIL_TMP_FILES, "leftover.txt"]))
    status, body = api.run_file("state_read")
    assert (status, body["result"]) == (
        200,
        {"tmp": JAIL_TMP_FILES, "shm": [], "env": None, "builtin": None},
    )


def test_background_processes_die_with_the_request(api: Api) -> None:
    status, body = api.run_file("background_process")
    assert (status, body["result"]) == (200, "started")
    # leaves_nothing_behind checks that the detached children are gone.


def test_fork_bomb_is_held_to_the_process_limit_and_stopped_by_the_cpu_limit(
    api: Api, app_client: FlaskClient, service: Service
) -> None:
    """The bomb fills its jail up to the pids limit, no further; another request is
    served while it runs; the jail's CPU, counted for all its processes together (a
    per-process RLIMIT_CPU would never add up), ends it as cpu_limit. A budget of
    4 s CPU at the jail's 1 CPU gives the neighbour seconds to be served."""
    outcomes: dict[str, tuple[int, dict[str, Any]]] = {}

    def bomb() -> None:
        outcomes["bomb"] = api.post(
            {"script": script("fork_bomb"), "cpu_seconds": 4, "timeout_seconds": 8}
        )

    thread = threading.Thread(target=bomb)
    with JailCensus(jail_uids(service.settings)) as census:
        thread.start()
        wait_until(lambda: service.executor.running() == 1, "the bomb to be running")
        neighbour = Api(app_client.application.test_client()).run_file("hello")
        bomb_still_running = thread.is_alive()
        thread.join()
    assert core(neighbour) == (200, {"result": {"hello": "world"}, "stdout": ""})
    assert bomb_still_running
    status, body = outcomes["bomb"]
    assert (status, body["kind"]) == (400, "cpu_limit")
    assert body["error"] == (
        "The script used more than its CPU time limit of 4 s. Raise cpu_seconds, up to 60."
    )
    _, peak = census.largest()
    assert service.settings.max_pids // 2 < peak <= service.settings.max_pids


def test_thread_bomb_hits_the_process_limit(api: Api) -> None:
    status, body = api.run_file("thread_bomb")
    assert status == 200
    assert body["result"]["started"] < 128
    assert "can't start new thread" in body["result"]["error"]


@pytest.mark.parametrize("name", ["memory_bomb_python", "memory_bomb_numpy"])
def test_memory_bomb_is_memory_limit(api: Api, name: str) -> None:
    status, body = api.run_file(name)
    assert status == 400
    assert body["kind"] == "memory_limit"
    assert "256 MB" in body["error"] or "MemoryError" in body["error"]


def test_memory_bomb_in_a_child_process_only_kills_the_child(api: Api) -> None:
    status, body = api.run_file("memory_bomb_child")
    assert status == 200
    assert body["result"]["child_returncode"] == -9


def test_infinite_loop_is_stopped_by_the_cpu_limit(api: Api) -> None:
    """With a CPU limit well below the wall limit, a busy loop meets the CPU limit first."""
    status, body = api.post(
        {"script": script("infinite_loop"), "cpu_seconds": 1, "timeout_seconds": 4}
    )
    assert status == 400
    assert body["kind"] == "cpu_limit"
    assert body["error"] == (
        "The script used more than its CPU time limit of 1 s. Raise cpu_seconds, up to 60."
    )
    assert body["limits"] == {"timeout_seconds": 4, "cpu_seconds": 1, "memory_mb": 256}


def test_cpu_limit_holds_when_sigxcpu_is_ignored(api: Api) -> None:
    status, body = api.run_file("sigxcpu_ignored")
    assert status == 400
    assert body["kind"] == "cpu_limit"
    assert "CPU time limit of 2 s" in body["error"]


def test_sleep_is_a_timeout_with_stdout_kept(api: Api) -> None:
    status, body = api.run_file("sleep_forever")
    assert status == 400
    assert body["kind"] == "timeout"
    assert body["error"] == (
        "The script did not finish within its time limit of 4 s. Raise timeout_seconds, up to 60."
    )
    assert body["stdout"] == "going to sleep\n"


def test_stdout_flood_is_cut_at_the_limit(api: Api) -> None:
    status, body = api.run_file("stdout_flood")
    assert status == 400
    assert body["kind"] == "output_limit"
    assert body["stdout_truncated"] is True
    assert len(body["stdout"].encode()) == 1024 * 1024
    assert body["stdout"].startswith("flood flood")


def test_stderr_flood_does_not_block_the_script(api: Api) -> None:
    assert core(api.run_file("stderr_flood")) == (200, {"result": "survived", "stdout": ""})


def test_huge_result_is_refused(api: Api) -> None:
    status, body = api.run_file("huge_result")
    assert status == 400
    assert body["kind"] == "result_too_large"
    assert "limit is 1048576 bytes" in body["error"]


def test_disk_fill_stops_at_the_tmpfs_size(api: Api) -> None:
    status, body = api.run_file("disk_fill")
    assert status == 400
    assert body["kind"] == "exception"
    assert body["exception"]["type"] == "OSError"
    assert "No space left on device" in body["error"]


def test_file_size_limit(api: Api) -> None:
    status, body = api.run_file("big_file")
    assert status == 400
    assert body["kind"] == "file_size_limit"


def test_killing_pid_1_or_the_parent_harms_nothing(api: Api) -> None:
    status, body = api.run_file("self_sigkill_stays_alive")
    assert status == 200
    assert body["result"] == {"pid": 1, "ppid": 0, "alive": True}


def test_escape_syscalls_are_denied(api: Api) -> None:
    status, body = api.run_file("escape_syscalls")
    assert status == 200
    result = body["result"]
    for name in (
        "unshare_user",
        "unshare_net",
        "unshare_ns",
        "mount",
        "chroot",
        "keyctl",
        "bpf",
        "io_uring_setup",
        "perf_event_open",
        "ptrace",
        "open_tree_attr",
    ):
        assert result[name] == "EPERM", name
    assert result["clone3"] == "ENOSYS"
    # uid 0 does not exist in the jail's user namespace at all.
    assert result["setuid0"] == "EINVAL"
    assert result["os_setuid"] == "EINVAL"


def test_concurrent_requests_each_get_their_own_result(app_client: FlaskClient) -> None:
    def one(index: int) -> tuple[int, dict[str, object]]:
        client = app_client.application.test_client()
        response = client.post(
            "/execute", json={"script": script("concurrent_echo", TOKEN=f"t{index}")}
        )
        body = response.get_json()
        check_schema(response.status_code, body)
        return response.status_code, body

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(one, range(20)))
    for index, answer in enumerate(answers):
        assert core(answer) == (
            200,
            {
                "result": {"token": f"t{index}", "files": sorted([*JAIL_TMP_FILES, "token"])},
                "stdout": f"t{index}",
            },
        )


def test_host_wide_files_do_not_exist_and_the_cpus_are_still_counted(api: Api) -> None:
    status, body = api.run_file("host_figures")
    assert status == 200, body
    result = body["result"]
    assert result["files"] == dict.fromkeys(
        result["files"], "unreadable: No such file or directory"
    )
    assert len(result["files"]) == 20
    # The jail's /proc holds its processes and nothing else (subset=pid).
    assert result["proc_entries"] == ["self", "thread-self"]
    assert result["own_status"] == "Name:\tpython"
    assert result["cpu_count"] == os.cpu_count()
    assert result["affinity"] == len(os.sched_getaffinity(0))


def test_a_script_that_lowers_its_own_cpu_limit_is_cpu_limit_not_memory(api: Api) -> None:
    status, body = api.run_file("own_cpu_rlimit")
    assert (status, body["kind"]) == (400, "cpu_limit")
    assert body["error"] == "The script lowered its own CPU time limit to 1 s and used it up."
    assert body["signal"] == "SIGKILL"


def test_the_kernel_oom_killer_takes_jails_first(api: Api) -> None:
    status, body = api.run(
        "def main():\n    return int(open('/proc/self/oom_score_adj').read())\n"
    )
    assert (status, body["result"]) == (200, 1000)
