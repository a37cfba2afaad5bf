"""PyexecCodeExecutor against the real google-adk: ``execute_code`` driven directly,
then ADK's own code-execution flow (an LlmAgent whose model is a stub that writes a
code block, run by ADK's InMemoryRunner) against the real service."""

from __future__ import annotations

import asyncio
import base64
import copy
from collections.abc import AsyncGenerator, Iterator

import pytest
from agents_live import KEY
from google.adk.agents import LlmAgent
from google.adk.agents.invocation_context import InvocationContext
from google.adk.code_executors.code_execution_utils import (
    CodeExecutionInput,
    CodeExecutionResult,
    File,
)
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import InMemoryRunner
from google.adk.sessions import InMemorySessionService, Session
from google.genai import types
from live import Server
from pydantic import Field, ValidationError

from pyexec_client import AuthError
from pyexec_client.adk import PyexecCodeExecutor, input_files

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def context() -> InvocationContext:
    """An invocation context as ADK makes one (the executor does not read it)."""
    session = Session(id="session", app_name="tests", user_id="user")
    return InvocationContext(
        session_service=InMemorySessionService(), invocation_id="invocation", session=session
    )


@pytest.fixture
def executor(keyed_server: Server) -> Iterator[PyexecCodeExecutor]:
    running = PyexecCodeExecutor(url=keyed_server.base, api_key=KEY, http_timeout=60)
    yield running
    running.close()


def run(
    executor: PyexecCodeExecutor, code: str, files: list[File] | None = None
) -> CodeExecutionResult:
    return executor.execute_code(context(), CodeExecutionInput(code, files or []))


def test_input_files_take_str_as_base64_and_bytes_as_they_are() -> None:
    text = base64.b64encode(b"region,amount\nnorth,3\n").decode()
    files = [File("sales.csv", text, "text/csv"), File("raw.bin", b"\x00\xff", "x/y")]
    assert input_files(files) == {"sales.csv": b"region,amount\nnorth,3\n", "raw.bin": b"\x00\xff"}
    with pytest.raises(ValueError, match=r"'notes.txt'.*base64"):
        input_files([File("notes.txt", "plain text, not base64")])
    unreachable = PyexecCodeExecutor(url="http://127.0.0.1:9")
    with pytest.raises(ValueError, match=r"snippet\.py"):  # refused before anything is sent
        run(unreachable, "print(1)\n", [File("snippet.py", b"print(2)\n")])
    unreachable.close()


def test_it_cannot_be_stateful_and_keeps_its_key_out_of_sight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValidationError, match="cannot be stateful"):
        PyexecCodeExecutor(url="http://127.0.0.1:9", stateful=True)
    executor = PyexecCodeExecutor(url="http://127.0.0.1:9", api_key=KEY)
    assert executor.stateful is False
    assert KEY not in repr(executor)
    assert KEY not in str(executor.model_dump())
    monkeypatch.setenv("PYEXEC_API_KEY", KEY)
    monkeypatch.delenv("PYEXEC_URL", raising=False)
    with pytest.raises(ValueError, match="PYEXEC_URL"):
        PyexecCodeExecutor().client()
    monkeypatch.setenv("PYEXEC_URL", "http://127.0.0.1:9")
    from_environment = PyexecCodeExecutor()
    assert "127.0.0.1:9" in repr(from_environment.client())
    assert KEY not in repr(from_environment.client())
    # Copies: a shallow one (ADK's agent.clone) shares the client, a deep one makes its own.
    assert copy.copy(from_environment).client() is from_environment.client()
    assert copy.deepcopy(from_environment).client() is not from_environment.client()
    from_environment.close()


def test_a_block_runs_with_its_input_files_and_hands_back_what_it_wrote(
    executor: PyexecCodeExecutor,
) -> None:
    csv = base64.b64encode(b"amount\n12\n30\n").decode()  # as ADK's data files come
    code = (
        "import csv, pathlib\n"
        "rows = list(csv.DictReader(open('sales.csv')))\n"
        "print('total', sum(int(row['amount']) for row in rows))\n"
        f"pathlib.Path('chart.png').write_bytes({PNG_MAGIC!r} + b'rest')\n"
        "pathlib.Path('out').mkdir()\n"
        "pathlib.Path('out/summary.json').write_text('{\"total\": 42}')\n"
        "pathlib.Path('log.bin').write_bytes(open('log.bin', 'rb').read() + b'!')\n"
        "pathlib.Path('user:shared.txt').write_text('mine now')\n"
    )
    result = run(
        executor,
        code,
        [File("sales.csv", csv, "text/csv"), File("log.bin", b"\x00\x01", "x/y")],
    )
    assert result.stderr == ""
    assert result.exit_code == 0
    assert result.stdout == (
        "total 42\n[pyexec: user:shared.txt was not returned: ADK reads the name as user-scoped]\n"
    )
    returned = {file.name: (file.mime_type, file.content) for file in result.output_files}
    # sales.csv came back unchanged and the code itself (snippet.py) is not a file of
    # the model's: neither is handed back. log.bin was changed: it is.
    assert returned == {
        "chart.png": ("image/png", PNG_MAGIC + b"rest"),
        "log.bin": ("application/octet-stream", b"\x00\x01!"),
        "out/summary.json": ("application/json", b'{"total": 42}'),
    }


def test_a_failed_block_gives_its_stderr_and_a_traceback_from_its_own_lines(
    executor: PyexecCodeExecutor,
) -> None:
    code = "import sys\nprint('before')\nprint('careful', file=sys.stderr)\nratio = 1 / 0\n"
    result = run(executor, code)
    assert result.stdout == "before\n"
    assert result.stderr == (
        "careful\n"
        "Traceback (most recent call last):\n"
        '  File "snippet.py", line 4, in <module>\n'
        "    ratio = 1 / 0\n"
        "            ~~^~~\n"
        "ZeroDivisionError: division by zero\n"
    )
    assert result.exit_code == 1


def test_exit_statuses_and_limits_read_as_a_program_s(keyed_server: Server) -> None:
    executor = PyexecCodeExecutor(url=keyed_server.base, api_key=KEY, timeout_seconds=1)
    try:
        clean = run(executor, "import sys\nprint('done')\nsys.exit(0)\n")
        assert (clean.stdout, clean.stderr, clean.exit_code) == ("done\n", "", 0)
        three = run(executor, "import sys\nsys.exit(3)\n")
        assert (three.stderr, three.exit_code) == ("The code exited with status 3.\n", 3)
        slow = run(executor, "import time\nprint('started', flush=True)\ntime.sleep(30)\n")
        assert slow.stdout == "started\n"
        assert "time limit of 1 s" in slow.stderr
        assert slow.exit_code is None
        syntax = run(executor, "print('a'\n")
        assert syntax.stderr.startswith('Traceback (most recent call last):\n  File "snippet.py"')
        assert "SyntaxError" in syntax.stderr
        assert syntax.exit_code == 1
    finally:
        executor.close()


def test_a_refused_request_is_a_result_and_a_refused_key_raises(
    executor: PyexecCodeExecutor, keyed_server: Server
) -> None:
    refused = run(executor, "print(1)\n", [File("../escape.txt", b"x")])
    assert refused.stderr.startswith("The sandbox refused to run the code: ")
    assert "escape.txt" in refused.stderr
    assert refused.exit_code is None
    keyless = PyexecCodeExecutor(url=keyed_server.base)
    with pytest.raises(AuthError):
        run(keyless, "print(1)\n")
    keyless.close()


class CodeWritingModel(BaseLlm):
    """A stand-in for an LLM: first a code block that reads the user's CSV and draws a
    chart, then a final answer that quotes what the code printed."""

    requests: list[LlmRequest] = Field(default_factory=list)

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        """One turn: the code block, then (with the block's output) the answer."""
        self.requests.append(llm_request)
        if len(self.requests) == 1:
            text = (
                "I will sum the amounts and draw them.\n```python\n"
                "import pandas as pd\n"
                "import matplotlib.pyplot as plt\n"
                "frame = pd.read_csv('data_1_2.csv')\n"
                "print('total:', frame['amount'].sum())\n"
                "frame.plot.bar(x='region', y='amount').figure.savefig('chart.png')\n"
                "```\n"
            )
        else:
            last = llm_request.contents[-1].parts or []
            text = "The sandbox said: " + "".join(part.text or "" for part in last)
        yield LlmResponse(content=types.Content(role="model", parts=[types.Part(text=text)]))


def test_adk_runs_the_model_s_code_block_and_saves_its_files_as_artifacts(
    keyed_server: Server,
) -> None:
    model = CodeWritingModel(model="stub")
    executor = PyexecCodeExecutor(
        url=keyed_server.base, api_key=KEY, http_timeout=60, optimize_data_file=True
    )
    agent = LlmAgent(name="analyst", model=model, code_executor=executor)
    runner = InMemoryRunner(agent=agent, app_name="tests")
    csv = b"region,amount\nnorth,12.5\nsouth,30\n"
    message = types.Content(
        role="user",
        parts=[
            types.Part(text="Sum the amounts, and draw them."),
            types.Part(inline_data=types.Blob(mime_type="text/csv", data=csv)),
        ],
    )

    async def conversation() -> list[str]:
        session = await runner.session_service.create_session(app_name="tests", user_id="u")
        said = []
        async for event in runner.run_async(
            user_id="u", session_id=session.id, new_message=message
        ):
            for part in event.content.parts or [] if event.content else []:
                if part.code_execution_result is not None:
                    said.append(f"result: {part.code_execution_result.output}")
                elif part.text:
                    said.append(part.text)
        assert runner.artifact_service is not None
        chart = await runner.artifact_service.load_artifact(
            app_name="tests", user_id="u", session_id=session.id, filename="chart.png"
        )
        assert chart is not None
        assert chart.inline_data is not None
        assert chart.inline_data.mime_type == "image/png"
        assert (chart.inline_data.data or b"").startswith(PNG_MAGIC)
        return said

    try:
        said = asyncio.run(conversation())
    finally:
        executor.close()
    explored, model_said, ran, answer = said[1:]
    # ADK first explored the CSV with its own code (optimize_data_file), in the jail.
    assert said[0] == "Processing input file: `data_1_2.csv`"
    assert explored.startswith("result: Code execution result:\nTotal rows: 2\n")
    # Then the model's code block ran; what it printed went back to the model.
    assert model_said == "I will sum the amounts and draw them.\n"
    printed = "Code execution result:\ntotal: 42.5\n\n\n\nSaved artifacts:\n`chart.png`"
    assert ran == f"result: {printed}"
    assert answer == f"The sandbox said: ```tool_output\n{printed}\n```"
    assert len(model.requests) == 2
