"""AsyncClient: Client's asyncio twin, same arguments, answers, errors and retries."""

from __future__ import annotations

import asyncio
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


class AsyncClient:
    """A pyexec service at ``url``, for asyncio code; see Client for every argument.

    Fetching a Google ID token (google-auth or gcloud) blocks, so it runs in a worker
    thread; a cached token does not.
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
        self._http = httpx.AsyncClient(base_url=self._session.url, follow_redirects=False)

    def __repr__(self) -> str:
        return f"AsyncClient({self._session!r})"

    async def execute(
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
        """Run ``script`` (it defines ``main()``) once in a fresh jail; see Client.execute."""
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
        response = await self._send("POST", "/execute", encode_body(body))
        return self._session.parse_success(response, parse_execute)

    async def run_code(
        self,
        code: str,
        *,
        files: Mapping[str, str | bytes] | None = None,
        output_files: Sequence[str] | None = None,
        timeout_seconds: float | None = None,
        cpu_seconds: int | None = None,
        memory_mb: int | None = None,
    ) -> RunResult:
        """Run ``code`` without ``main()`` from snippet.py; see Client.run_code."""
        body = run_code_body(
            code,
            files=files,
            output_files=output_files,
            timeout_seconds=timeout_seconds,
            cpu_seconds=cpu_seconds,
            memory_mb=memory_mb,
        )
        response = await self._send("POST", "/execute", encode_body(body))
        return self._session.parse_success(response, parse_run)

    async def health(self) -> Health:
        """``GET /healthz``; see Client.health."""
        response = await self._send("GET", "/healthz", None)
        return self._session.parse_success(response, parse_health)

    async def runtime(self) -> Runtime:
        """``GET /runtime``; see Client.runtime."""
        response = await self._send("GET", "/runtime", None)
        return self._session.parse_success(response, parse_runtime)

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(self, method: str, path: str, content: bytes | None) -> httpx.Response:
        """One call: attempts and retries (RetryPolicy) within the session's timeout."""
        session = self._session
        deadline = time.monotonic() + session.timeout
        retries = 0
        while True:
            if session.fetches_token:
                headers = await asyncio.to_thread(session.headers)
            else:
                headers = session.headers()
            if content is not None:
                headers["Content-Type"] = "application/json"
            try:
                response = await self._http.request(
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
            await asyncio.sleep(session.wait_or_raise(error, retries, deadline))
            retries += 1
