"""PyexecCodeExecutor: a code executor of Google's Agent Development Kit (google-adk)
that runs each code block the model writes in a fresh pyexec jail.

    from google.adk.agents import LlmAgent
    from pyexec_client.adk import PyexecCodeExecutor

    agent = LlmAgent(
        name="analyst",
        model="gemini-2.5-flash",
        code_executor=PyexecCodeExecutor(url="https://pyexec-...run.app"),
    )

Needs the ``adk`` extra (``pip install "pyexec-client[adk]"``). docs/agents.md tells
the rest.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from google.adk.code_executors.base_code_executor import BaseCodeExecutor
from google.adk.code_executors.code_execution_utils import (
    CodeExecutionInput,
    CodeExecutionResult,
    File,
)
from pydantic import Field, PrivateAttr, field_validator
from typing_extensions import override

from pyexec_client._agents import (
    DEFAULT_OUTPUT_FILES,
    exit_code,
    exited_cleanly,
    failure_text,
    notes,
    returned_files,
)
from pyexec_client._client import Client
from pyexec_client._results import OutputFile, RunResult
from pyexec_client.errors import RequestError, ScriptError

if TYPE_CHECKING:
    from google.adk.agents.invocation_context import InvocationContext

logger = logging.getLogger(__name__)

# ADK's artifact services read a name that starts with this as the user's namespace,
# shared by all of the user's sessions: a file the sandboxed code names so is not
# handed back, since the code chose that name, not the agent's builder.
_USER_NAMESPACE = "user:"


class _ClientSlot:
    """The executor's Client, made on first use and shared by its copies' threads
    (ADK runs ``execute_code`` in a worker thread). A deep copy starts empty: a Client
    holds connections and locks, which are not copied."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: Client | None = None

    def get(self, make: Callable[[], Client]) -> Client:
        with self._lock:
            if self._client is None:
                self._client = make()
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __deepcopy__(self, memo: dict[int, Any]) -> _ClientSlot:
        return _ClientSlot()


class PyexecCodeExecutor(BaseCodeExecutor):
    """Runs each code block in a fresh pyexec jail with the client's ``run_code``.

    Not stateful: every block starts from nothing, so variables, imports and files of
    one block are gone in the next (the input files are sent again each time).
    ``url`` and ``api_key`` default to PYEXEC_URL and PYEXEC_API_KEY in the
    environment; ``google_auth`` and ``http_timeout`` are the Client's ``google_auth``
    and ``timeout``. ``timeout_seconds`` (ADK's own field), ``cpu_seconds`` and
    ``memory_mb`` are the script's limits (None: the server's defaults).
    ``output_files``: the glob patterns of the files to hand back as ADK Files (and so
    as artifacts); the request's input files come back only when the code changed them.

    A failed run is a result, as ADK expects: its stderr, then the traceback (from
    the code's own lines on) or the service's sentence, with ``exit_code`` 1 for an
    exception and the code's own for ``sys.exit``. A request the service refuses (too
    large, a bad file name) is a result too. Errors of the service or its settings
    (AuthError, UnavailableError, OverloadedError, ServerError, no connection) raise.
    """

    url: str | None = None
    api_key: str | None = Field(default=None, repr=False, exclude=True)
    google_auth: bool | None = None
    http_timeout: float = 90.0
    output_files: list[str] = Field(default_factory=lambda: list(DEFAULT_OUTPUT_FILES))
    cpu_seconds: int | None = None
    memory_mb: int | None = None

    # ADK's field: a stateful executor keeps variables between code blocks. Each run
    # here is a jail of its own, so it cannot be.
    stateful: bool = Field(default=False, frozen=True, exclude=True)

    _slot: _ClientSlot = PrivateAttr(default_factory=_ClientSlot)

    @field_validator("stateful")
    @classmethod
    def _not_stateful(cls, value: bool) -> bool:
        if value:
            raise ValueError(
                "PyexecCodeExecutor cannot be stateful: each code block runs in a fresh jail"
            )
        return value

    @override
    def execute_code(
        self,
        invocation_context: InvocationContext,
        code_execution_input: CodeExecutionInput,
    ) -> CodeExecutionResult:
        """Run the code block; see the class docstring for what comes back."""
        code = code_execution_input.code
        sent = input_files(code_execution_input.input_files)
        try:
            answer = self.client().run_code(
                code,
                files=dict(sent) or None,
                output_files=self.output_files or None,
                timeout_seconds=self.timeout_seconds,
                cpu_seconds=self.cpu_seconds,
                memory_mb=self.memory_mb,
            )
        except ScriptError as error:
            status = 0 if exited_cleanly(error) else exit_code(error)  # sys.exit(0) succeeds
            return _result(error, error.files, sent, code, exit_status=status)
        except RequestError as error:
            return CodeExecutionResult(stderr=f"The sandbox refused to run the code: {error}")
        return _result(answer, answer.files, sent, code, exit_status=0)

    def client(self) -> Client:
        """The Client this executor sends with (made on first use)."""
        return self._slot.get(self._make_client)

    def close(self) -> None:
        """Close the client's connections (a later run opens new ones)."""
        self._slot.close()

    def _make_client(self) -> Client:
        url = self.url or os.environ.get("PYEXEC_URL")
        if not url:
            raise ValueError("PyexecCodeExecutor needs the service's URL: url= or PYEXEC_URL")
        api_key = self.api_key or os.environ.get("PYEXEC_API_KEY") or None
        return Client(
            url, api_key=api_key, google_auth=self.google_auth, timeout=self.http_timeout
        )


def input_files(files: list[File]) -> dict[str, bytes]:
    """ADK's input files as run_code's ``files``: a ``str`` content is base64 (as
    ADK's File says, and as its own data-file handling makes them), bytes are as
    they are. ValueError names a file whose text is not base64."""
    decoded: dict[str, bytes] = {}
    for file in files:
        content = file.content
        if isinstance(content, str):
            try:
                content = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError(
                    f"input file {file.name!r}: a str content is base64 (ADK's File), "
                    "and this one is not; pass bytes for raw content"
                ) from exc
        decoded[file.name] = bytes(content)
    return decoded


def output_file(output: OutputFile) -> File | None:
    """A returned file as an ADK File (bytes, the service's MIME type), or None when
    it has no content or a name ADK would read as the user's namespace."""
    if output.content is None:
        return None
    if output.path.startswith(_USER_NAMESPACE):
        logger.warning("not returning %r: ADK reads the name as user-scoped", output.path)
        return None
    return File(
        name=output.path,
        content=output.content,
        mime_type=output.mime_type or "application/octet-stream",
    )


def _result(
    answer: RunResult | ScriptError,
    files: tuple[OutputFile, ...],
    sent: dict[str, bytes],
    code: str,
    *,
    exit_status: int | None,
) -> CodeExecutionResult:
    """The CodeExecutionResult of a run: ADK reads a non-empty stderr as a failure, so
    a run that succeeded has none (its warnings are dropped, as ADK's local executor
    drops them)."""
    new = returned_files(files, sent, code=code)
    handed = [converted for converted in map(output_file, new) if converted is not None]
    said = notes(answer, new) + [
        f"[pyexec: {output.path} was not returned: ADK reads the name as user-scoped]"
        for output in new
        if output.content is not None and output.path.startswith(_USER_NAMESPACE)
    ]
    stdout = _joined(answer.stdout, "\n".join(said)) if said else answer.stdout
    stderr = ""
    if isinstance(answer, ScriptError) and exit_status != 0:
        stderr = _joined(answer.stderr, failure_text(answer, snippet=True))
    return CodeExecutionResult(
        stdout=stdout, stderr=stderr, output_files=handed, exit_code=exit_status
    )


def _joined(first: str, second: str) -> str:
    """``second`` after ``first``, on a line of its own, ending with a newline."""
    if first and not first.endswith("\n"):
        first += "\n"
    return first + second if second.endswith("\n") else f"{first}{second}\n"
