"""``pyexec mcp`` as an MCP host runs it: spawned by the MCP SDK's own stdio client
(``stdio_client`` + ``ClientSession``), with the key in its environment, against the
real service."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from agents_live import KEY
from live import Server, pyexec_command, run_cli
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import (
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    TextContent,
    TextResourceContents,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"rest of the image"


@contextlib.asynccontextmanager
async def connected(
    url: str, *arguments: str, key: str | None = KEY
) -> AsyncIterator[ClientSession]:
    """A session with ``pyexec mcp --url URL ARGUMENTS`` spawned over stdio; the key,
    if any, in its environment as a desktop host passes it (the SDK passes no other
    variable of ours: PATH, HOME and the like only)."""
    server = StdioServerParameters(
        command=pyexec_command(),
        args=["mcp", "--url", url, *arguments],
        env={"PYEXEC_API_KEY": key} if key else {},
    )
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def call(session: ClientSession, **arguments: Any) -> CallToolResult:
    answer = await session.call_tool("run_python", arguments)
    assert isinstance(answer, CallToolResult)
    return answer


def summary(answer: CallToolResult) -> dict[str, Any]:
    """The first block, the JSON summary; it equals the structured content."""
    first = answer.content[0]
    assert isinstance(first, TextContent)
    parsed: dict[str, Any] = json.loads(first.text)
    assert parsed == answer.structured_content
    return parsed


def test_run_python_is_listed_and_hands_back_output_and_files(keyed_server: Server) -> None:
    code = (
        "import pathlib\n"
        "print('rows:', len(open('data/in.csv').read().splitlines()))\n"
        f"pathlib.Path('plot.png').write_bytes({PNG!r})\n"
        "pathlib.Path('out.csv').write_text('a,b\\n1,2\\n')\n"
        "pathlib.Path('blob.bin').write_bytes(bytes(range(256)))\n"
    )

    async def session() -> tuple[Any, CallToolResult]:
        async with connected(keyed_server.base) as client:
            tools = (await client.list_tools()).tools
            return tools, await call(client, code=code, files={"data/in.csv": "x\n1\n2\n"})

    tools, answer = anyio.run(session)
    assert [tool.name for tool in tools] == ["run_python"]
    schema = tools[0].input_schema
    assert schema["required"] == ["code"]
    assert set(schema["properties"]) == {"code", "input", "files"}
    assert tools[0].annotations is not None
    assert tools[0].annotations.open_world_hint is False

    assert answer.is_error is False
    assert summary(answer) == {
        "stdout": "rows: 3\n",
        "stderr": "",
        "result": None,
        # Sorted by path; the request's data/in.csv came back unchanged and is left out.
        "files": [
            {"path": "blob.bin", "size": 256, "mime_type": "application/octet-stream"},
            {"path": "out.csv", "size": 8, "mime_type": "text/csv"},
            {"path": "plot.png", "size": len(PNG), "mime_type": "image/png"},
        ],
    }
    blob, text, image = answer.content[1:]
    assert isinstance(blob, EmbeddedResource)
    assert isinstance(blob.resource, BlobResourceContents)
    assert base64.b64decode(blob.resource.blob) == bytes(range(256))
    assert blob.resource.uri == "pyexec:///blob.bin"
    assert isinstance(text, EmbeddedResource)
    assert isinstance(text.resource, TextResourceContents)
    assert (text.resource.text, text.resource.mime_type) == ("a,b\n1,2\n", "text/csv")
    assert isinstance(image, ImageContent)
    assert (base64.b64decode(image.data), image.mime_type) == (PNG, "image/png")


def test_main_gets_input_and_failures_are_error_results(keyed_server: Server) -> None:
    async def session() -> list[CallToolResult]:
        async with connected(keyed_server.base, "--output-files", "*.txt") as client:
            return [
                await call(
                    client,
                    code="def main(prices):\n    return {'total': sum(prices), 'seen': {1}}\n",
                    input=[1.5, 2.5],
                ),
                await call(client, code="print('no main here')\n", input=3),
                await call(
                    client,
                    code="open('note.txt', 'w').write('kept')\nprint('half')\nx = 1 / 0\n",
                ),
                await call(client, code="import time\ntime.sleep(0.1)\n", files={"../x": "y"}),
                await call(client, code="print(1)\n", files={"snippet.py": "print(2)\n"}),
            ]

    result, no_main, failed, refused, reserved = anyio.run(session)
    # A set is not JSON: the tool asks the service to convert it (coerce_result).
    assert summary(result)["result"] == {"total": 4.0, "seen": [1]}
    assert no_main.is_error is True
    assert no_main.content == [
        TextContent(
            type="text",
            text="input is passed to main(input): define main(input) in the code, or leave "
            "input out.",
        )
    ]
    assert failed.is_error is True
    said = summary(failed)
    assert (said["kind"], said["stdout"]) == ("exception", "half\n")
    assert said["error"].startswith('Traceback (most recent call last):\n  File "snippet.py"')
    assert said["error"].endswith("ZeroDivisionError: division by zero\n")
    assert said["files"] == [{"path": "note.txt", "size": 4, "mime_type": "text/plain"}]
    assert refused.is_error is True
    assert isinstance(refused.content[0], TextContent)
    assert refused.content[0].text.startswith("RequestError: ")
    assert reserved.is_error is True
    assert reserved.content == [
        TextContent(
            type="text",
            text="files: snippet.py is where the code itself goes; give the file another name.",
        )
    ]


def test_a_long_run_does_not_hold_up_other_calls(keyed_server: Server) -> None:
    finished: list[str] = []

    async def session() -> float:
        async with connected(keyed_server.base) as client:

            async def slow() -> None:
                await call(client, code="import time\ntime.sleep(5)\n")
                finished.append("slow")

            async def quick() -> float:
                await anyio.sleep(0.5)  # the slow call is on its way by now
                started = time.monotonic()
                await call(client, code="print('quick')\n")
                finished.append("quick")
                return time.monotonic() - started

            quick_seconds: list[float] = []
            async with anyio.create_task_group() as group:
                group.start_soon(slow)

                async def timed() -> None:
                    quick_seconds.append(await quick())

                group.start_soon(timed)
            return quick_seconds[0]

    quick_seconds = anyio.run(session)
    assert finished == ["quick", "slow"]
    assert quick_seconds < 4


def test_the_key_comes_from_the_environment_only(keyed_server: Server) -> None:
    async def session() -> CallToolResult:
        async with connected(keyed_server.base, key=None) as client:
            return await call(client, code="print(1)\n")

    refused = anyio.run(session)
    assert refused.is_error is True
    assert isinstance(refused.content[0], TextContent)
    assert refused.content[0].text.startswith("AuthError: ")
    # No argument takes it: it would show in `ps` and in the host's config file.
    given = run_cli("mcp", "--url", keyed_server.base, "--api-key", KEY)
    assert given.returncode == 2
    assert "unrecognized arguments: --api-key" in given.stderr
