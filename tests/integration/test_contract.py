"""The API contract of POST /execute: results, stdout and every script failure's kind."""

from __future__ import annotations

import pytest

from tests.support import Api, core


def test_hello_world(api: Api) -> None:
    assert core(api.run_file("hello")) == (200, {"result": {"hello": "world"}, "stdout": ""})


def test_stdout_is_byte_exact_with_unicode_and_bad_bytes(api: Api) -> None:
    status, body = api.run_file("stdout_mixed")
    assert status == 200
    assert body["result"] is None
    expected = "line one\nraw bytes\nh\u00e9llo \u2603 \U0001f600 bad:\ufffd\ufffd!"
    assert body["stdout"] == expected


def test_printing_a_result_lookalike_never_changes_the_result(api: Api) -> None:
    status, body = api.run_file("stdout_forged_result")
    assert status == 200
    assert body["result"] == 1
    assert body["stdout"] == (
        '{"status": "ok", "result": 999}\n{"result": "forged", "stdout": ""}\n'
    )


def test_main_guard_does_not_run_main_twice(api: Api) -> None:
    assert core(api.run_file("main_guard")) == (200, {"result": 1, "stdout": "main ran 1\n"})


def test_pandas_and_numpy_work(api: Api) -> None:
    assert core(api.run_file("pandas_sum")) == (
        200,
        {"result": {"sum_a": 10, "mean_b": 2.0}, "stdout": "(4, 2)\n"},
    )


def test_numpy_values_are_converted_to_plain_json(api: Api) -> None:
    status, body = api.run_file("result_numpy")
    assert status == 200
    assert body["result"] == {
        "int": 7,
        "float": 0.5,
        "bool": True,
        "array": [[0, 1, 2], [3, 4, 5]],
        "nested": [1.5, {"x": [1.0, 2.0]}],
    }


def test_stdin_is_empty(api: Api) -> None:
    assert core(api.run_file("stdin_eof")) == (200, {"result": "eof", "stdout": ""})


def test_threads_and_subprocesses_work(api: Api) -> None:
    status, body = api.run_file("threads_work")
    assert status == 200
    assert body["result"] == sorted(n * n for n in range(16))
    assert core(api.run_file("subprocess_works")) == (200, {"result": "42", "stdout": ""})


def test_tmp_and_the_working_directory_are_writable(api: Api) -> None:
    status, body = api.run_file("tmp_write_read")
    assert status == 200
    assert body["result"] == {
        "content": "kept for this run only",
        "cwd": "/data",
        "cwd_content": "and this",
        "cwd_was_empty": True,
    }


@pytest.mark.parametrize(
    ("name", "kind", "phrase"),
    [
        ("no_main", "no_main", "does not define a function named main()"),
        ("main_not_callable", "main_not_callable", "main is a int, not a function"),
        ("main_needs_args", "main_signature", "main(x, y) needs arguments"),
        ("main_async", "main_async", "async def"),
        ("generator_result", "invalid_result", "returned a generator"),
    ],
)
def test_bad_main(api: Api, name: str, kind: str, phrase: str) -> None:
    status, body = api.run_file(name)
    assert status == 400
    assert body["kind"] == kind
    assert phrase in body["error"]


def test_syntax_error_names_the_line(api: Api) -> None:
    status, body = api.run_file("syntax_error")
    assert status == 400
    assert body["kind"] == "syntax_error"
    assert body["line"] == 3
    assert body["error"].startswith("SyntaxError on line 3:")
    assert body["code"] == "    return x +"


def test_exception_in_main_has_type_message_and_only_user_frames(api: Api) -> None:
    status, body = api.run_file("exception_in_main")
    assert status == 400
    assert body["kind"] == "exception"
    assert body["error"] == "KeyError in main(): 'missing'"
    assert body["exception"] == {"type": "KeyError", "message": "'missing'"}
    assert body["stdout"] == "before the error\n"
    assert [(f["file"], f["function"], f["line"]) for f in body["traceback"]] == [
        ("script", "main", 7),
        ("script", "helper", 2),
    ]
    assert body["traceback"][-1]["code"] == 'return d["missing"]'
    text = body["traceback_text"]
    assert 'File "script", line 7, in main' in text
    assert "<string>" not in text
    assert "runner" not in text


def test_exception_at_module_level(api: Api) -> None:
    status, body = api.run_file("exception_at_module_level")
    assert status == 400
    assert body["kind"] == "exception"
    assert body["exception"]["type"] == "JSONDecodeError"
    assert "while loading the script" in body["error"]
    assert body["traceback"][0]["file"] == "script"
    assert body["traceback"][0]["line"] == 3


@pytest.mark.parametrize(
    ("name", "path", "type_name"),
    [
        ("result_set", "result['a'][2]", "set"),
        ("result_nan", "result['x'][1]", "float"),
        ("result_infinity", "result", "float"),
        ("result_non_str_key", "result", "int"),
        ("result_dataframe", "result['frame']", "pandas.DataFrame"),
        ("result_numpy_nan", "result['values'][1]", "float"),
    ],
)
def test_invalid_result_names_the_part_and_type(
    api: Api, name: str, path: str, type_name: str
) -> None:
    status, body = api.run_file(name)
    assert status == 400
    assert body["kind"] == "invalid_result"
    assert body["path"] == path
    assert body["type"].endswith(type_name)
    assert body["error"].startswith(path)


def test_circular_result(api: Api) -> None:
    status, body = api.run_file("result_circular")
    assert (status, body["kind"]) == (400, "invalid_result")
    assert "circular" in body["error"]


@pytest.mark.parametrize(
    ("name", "kind", "extra"),
    [
        ("sys_exit", "exited", {"exit_code": 3, "stdout": "leaving\n"}),
        ("sys_exit_module", "exited", {"exit_code": 1}),
        ("os_exit", "exited", {"exit_code": 7, "stdout": "about to exit\n"}),
        ("segfault", "crashed", {"signal": "SIGSEGV", "stdout": "crashing\n"}),
    ],
)
def test_process_ending_early_is_an_error_not_a_500(
    api: Api, name: str, kind: str, extra: dict[str, object]
) -> None:
    status, body = api.run_file(name)
    assert status == 400
    assert body["kind"] == kind
    for key, value in extra.items():
        assert body[key] == value


def test_exit_builtin_and_venv_prefix_exist(api: Api) -> None:
    status, body = api.run_file("builtins_exit")
    assert (status, body["kind"], body["exit_code"]) == (400, "exited", 4)
    assert body["stdout"] == "/opt/pyexec/sandbox\n"
