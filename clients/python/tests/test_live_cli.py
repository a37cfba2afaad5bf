"""The ``pyexec`` command through its installed entry point, in a subprocess, against
the real service: output on the right streams, the exit codes, files in and out."""

from __future__ import annotations

import json
from pathlib import Path

from live import SCRIPTS_DIR, Server, free_port, run_cli


def scripts(name: str) -> str:
    return str(SCRIPTS_DIR / f"{name}.py")


def test_run_prints_the_scripts_output_then_the_result(server: Server) -> None:
    done = run_cli("run", scripts("echo_input"), "--input", '{"n": [1, 2]}', "--url", server.base)
    assert done.returncode == 0, done.stderr
    assert done.stdout == '{"got": {"n": [1, 2]}}\n'
    assert done.stderr == "stderr line\n"


def test_the_url_can_come_from_pyexec_url_and_the_script_from_stdin(server: Server) -> None:
    done = run_cli(
        "run", "-", environ={"PYEXEC_URL": server.base}, stdin="def main():\n    return 7\n"
    )
    assert (done.returncode, done.stdout) == (0, "7\n")


def test_input_from_a_file(server: Server, tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text("null")
    arguments = ["run", scripts("echo_input"), "--input", "@in.json", "--url", server.base]
    done = run_cli(*arguments, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, '{"got": null}\n')


def test_code_without_main_prints_its_output_and_no_result(server: Server) -> None:
    done = run_cli("run", "--code", "-", "--url", server.base, stdin="print(6 * 7)\n")
    assert (done.returncode, done.stdout, done.stderr) == (0, "42\n", "")


def test_files_go_in_and_come_back_under_out(server: Server, tmp_path: Path) -> None:
    (tmp_path / "nums.txt").write_text("40\n2\n")
    (tmp_path / "b.bin").write_bytes(b"\x00\x01\x02")
    arguments = ["run", scripts("transform_files"), "--url", server.base]
    arguments += ["--file", "nums.txt:numbers.txt", "--file", "b.bin:blob.bin"]
    arguments += ["--output-files", "total.txt", "--output-files", "rev*", "--out", "results"]
    done = run_cli(*arguments, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "42\n"
    assert (tmp_path / "results/total.txt").read_text() == "42"
    assert (tmp_path / "results/reversed.bin").read_bytes() == b"\x02\x01\x00"
    again = run_cli(*arguments, cwd=tmp_path)
    assert again.returncode == 2
    assert "refusing to overwrite" in again.stderr
    assert (tmp_path / "results/total.txt").read_text() == "42"


def test_a_failing_script_exits_1_with_its_output_and_traceback(server: Server) -> None:
    done = run_cli("run", scripts("raises_after_output"), "--url", server.base)
    assert done.returncode == 1
    assert done.stdout == "before the failure\n"
    assert done.stderr.startswith("warning: about to fail\npyexec: exception: ValueError")
    assert "Traceback (most recent call last)" in done.stderr


def test_a_failing_snippet_names_its_own_line(server: Server) -> None:
    done = run_cli("run", "--code", scripts("snippet_fails"), "--url", server.base)
    assert done.returncode == 1
    assert 'File "snippet.py", line 6, in <module>' in done.stderr


def test_json_prints_the_raw_answer(server: Server) -> None:
    done = run_cli("run", scripts("hello"), "--url", server.base, "--json")
    assert done.returncode == 0
    answer = json.loads(done.stdout)
    assert answer["result"] == {"hello": "world"}
    assert answer["stdout"] == "hello from the jail\n"
    failed = run_cli("run", scripts("raises_after_output"), "--url", server.base, "--json")
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["kind"] == "exception"


def test_a_request_the_service_refuses_exits_2(server: Server) -> None:
    done = run_cli("run", scripts("hello"), "--url", server.base, "--memory-mb", "999999")
    assert done.returncode == 2
    assert "bad_request" in done.stderr


def test_health(server: Server) -> None:
    done = run_cli("health", "--url", server.base)
    assert done.returncode == 0
    assert done.stdout.startswith("ok: cgroups ")
    as_json = run_cli("health", "--url", server.base, "--json")
    assert json.loads(as_json.stdout)["status"] == "ok"


def test_coerce_result_converts_a_dataframe(server: Server) -> None:
    arguments = ["run", scripts("dataframe_nan"), "--url", server.base]
    done = run_cli(*arguments, "--coerce-result")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        {"city": "Lyon", "rain_mm": 12.5},
        {"city": "Oslo", "rain_mm": None},
    ]
    strict = run_cli(*arguments)
    assert strict.returncode == 1
    assert "invalid_result" in strict.stderr


def test_runtime_prints_the_answer_as_json(server: Server) -> None:
    done = run_cli("runtime", "--url", server.base)
    assert done.returncode == 0, done.stderr
    runtime = json.loads(done.stdout)
    assert {"numpy", "pandas"} <= {package["name"].lower() for package in runtime["packages"]}
    assert set(runtime["limits"]) == {"timeout_seconds", "cpu_seconds", "memory_mb"}
    as_json = run_cli("runtime", "--url", server.base, "--json")
    assert as_json.returncode == 0
    assert as_json.stdout.count("\n") == 1
    assert json.loads(as_json.stdout) == runtime


def test_no_service_exits_5_and_no_url_exits_2() -> None:
    nowhere = run_cli("health", "--url", f"http://127.0.0.1:{free_port()}", "--http-timeout", "1")
    assert nowhere.returncode == 5
    assert "Cannot connect to" in nowhere.stderr
    no_url = run_cli("health")
    assert no_url.returncode == 2
    assert "PYEXEC_URL" in no_url.stderr


def test_a_missing_local_file_exits_2_before_anything_is_sent(server: Server) -> None:
    done = run_cli("run", "/nonexistent/script.py", "--url", server.base)
    assert done.returncode == 2
    assert "cannot read" in done.stderr
