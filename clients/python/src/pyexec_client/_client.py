"""Client: the blocking client of a pyexec service (AsyncClient is its asyncio twin)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from types import TracebackType

import httpx

from pyexec_client._request import UNSET, encode_body, execute_body, run_code_body
from pyexec_client._results import (
    ExecuteResult,
    Health,
    RunResult,
    Runtime,
    parse_execute,
    parse_health,
    parse_run,
    parse_runtime,
)
from pyexec_client._session import Session, sent_token
from pyexec_client._tokens import TokenProvider


class Client:
    """A pyexec service at ``url`` (its base URL, e.g. ``http://localhost:8080``).

    ``api_key`` goes out as ``X-API-Key`` (for ``PYEXEC_API_KEYS``). ``google_auth``:
    None sends a Google ID token when ``url`` is a ``*.run.app`` host and one can be
    had without probing the network, True always (AuthError if none), False never; a
    callable is a TokenProvider to use instead of google-auth and gcloud.
    ``timeout`` (seconds) bounds each call, its retries included: it is how long the
    client waits for an answer, not the script's limit (``timeout_seconds``).

    Thread-safe; one client keeps its connections open: ``close()`` it, or use
    ``with Client(...) as client``.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        google_auth: bool | TokenProvider | None = None,
        timeout: float = 90.0,
    ) -> None:
        self._session = Session(url, api_key=api_key, google_auth=google_auth, timeout=timeout)
        self._http = httpx.Client(base_url=self._session.url, follow_redirects=False)

    def __repr__(self) -> str:
        return f"Client({self._session!r})"

    def execute(
        self,
        script: str,
        *,
        input: object = UNSET,
        files: Mapping[str, str | bytes] | None = None,
        output_files: Sequence[str] | None = None,
        timeout_seconds: float | None = None,
        cpu_seconds: int | None = None,
        memory_mb: int | None = None,
        coerce_result: bool | None = None,
    ) -> ExecuteResult:
        """Run ``script`` (it defines ``main()``) once in a fresh jail.

        ``input``: any JSON value, passed as ``main(input)``; not given, ``main()`` is
        called (None sends null). ``files``: path -> content written into the working
        directory first (str as UTF-8 text, bytes as they are). ``output_files``: glob
        patterns of the files to return. The limits: None leaves the server's default.
        ``coerce_result``: True converts what JSON cannot hold (dates, NaN, DataFrames,
        sets, bytes, ...) by the service's table instead of failing with
        ``invalid_result``; None leaves the server's default (False).
        Raises ScriptError when the script fails, and the other PyexecErrors.
        """
        body = execute_body(
            script,
            input=input,
            files=files,
            output_files=output_files,
            timeout_seconds=timeout_seconds,
            cpu_seconds=cpu_seconds,
            memory_mb=memory_mb,
            coerce_result=coerce_result,
        )
        return self._session.parse_success(
            self._send("POST", "/execute", encode_body(body)), parse_execute
        )

    def run_code(
        self,
        code: str,
        *,
        files: Mapping[str, str | bytes] | None = None,
        output_files: Sequence[str] | None = None,
        timeout_seconds: float | None = None,
        cpu_seconds: int | None = None,
        memory_mb: int | None = None,
    ) -> RunResult:
        """Run ``code`` that has no ``main()``, as a program: what it prints and leaves.

        The client's doing, not an endpoint: the code is sent as the file snippet.py
        and run by a script whose ``main()`` calls ``runpy.run_path("snippet.py",
        run_name="__main__")``, so tracebacks show snippet.py with the code's lines.
        """
        body = run_code_body(
            code,
            files=files,
            output_files=output_files,
            timeout_seconds=timeout_seconds,
            cpu_seconds=cpu_seconds,
            memory_mb=memory_mb,
        )
        return self._session.parse_success(
            self._send("POST", "/execute", encode_body(body)), parse_run
        )

    def health(self) -> Health:
        """``GET /healthz``: Health when the sandbox works; UnavailableError when it does
        not (``starting``, ``sandbox_unavailable``)."""
        return self._session.parse_success(self._send("GET", "/healthz", None), parse_health)

    def runtime(self) -> Runtime:
        """``GET /runtime``: the jail's Python and packages, the pre-imported modules and
        each limit's default and maximum. Needs the API key when the service has keys;
        UnavailableError until the sandbox is known to work, as for ``health``."""
        return self._session.parse_success(self._send("GET", "/runtime", None), parse_runtime)

    def close(self) -> None:
        """Close the client's connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, method: str, path: str, content: bytes | None) -> httpx.Response:
        """One call: attempts and retries (RetryPolicy) within the session's timeout."""
        session = self._session
        deadline = time.monotonic() + session.timeout
        retries = 0
        while True:
            headers = session.headers()
            if content is not None:
                headers["Content-Type"] = "application/json"
            try:
                response = self._http.request(
                    method,
                    path,
                    content=content,
                    headers=headers,
                    timeout=session.attempt_timeout(deadline - time.monotonic()),
                )
            except httpx.TransportError as exc:
                error = session.transport_error(exc)
                error.__cause__ = exc
            else:
                maybe_error = session.answer_error(response, sent_token=sent_token(headers))
                if maybe_error is None:
                    return response
                error = maybe_error
            time.sleep(session.wait_or_raise(error, retries, deadline))
            retries += 1
