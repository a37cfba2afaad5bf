"""``pyexec mcp``: an MCP server over stdio whose tool ``run_python`` runs Python in a
pyexec jail and answers with what it printed, its result and the files it left.

Built on the official MCP SDK (the ``mcp`` extra: ``pip install "pyexec-client[mcp]"``)
and the AsyncClient, so a long run never holds up the server's event loop: calls run
side by side, each waiting on its own HTTP answer. The API key comes from
PYEXEC_API_KEY only, never from an argument or a file. docs/agents.md tells the rest.
"""

import base64
import functools
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.types import (
    BlobResourceContents,
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
)
from pydantic import Field

from pyexec_client._agents import (
    DEFAULT_OUTPUT_FILES,
    defines_main,
    exited_cleanly,
    failure_text,
    notes,
    returned_files,
)
from pyexec_client._async_client import AsyncClient
from pyexec_client._cli_args import McpCommand, UsageError
from pyexec_client._request import SNIPPET_PATH, UNSET
from pyexec_client._results import ExecuteResult, OutputFile, RunResult
from pyexec_client._version import __version__
from pyexec_client.errors import PyexecError, ScriptError

# What MCP clients show as pictures; other images (SVG, BMP, TIFF) go as resources.
IMAGE_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

TOOL_NAME: Final = "run_python"

TOOL_DESCRIPTION: Final = """\
Run Python code in a fresh, isolated sandbox and get back what it printed, its result \
and the files it wrote.

The code runs as a program: print() what you want to see. If it defines main(), main() \
is called instead (as main(input) when input is given) and its return value comes back \
as `result` (dates, NaN, DataFrames and sets are converted to JSON).
Every call starts from nothing: no variables, imports or files survive from earlier \
calls, so load data and import modules in each call. There is no network. \
Time, CPU and memory are limited.
`files` are written into the working directory before the code runs (path -> text), \
so the code opens them by their relative path. Files the code writes there come back: \
images as images, other files as embedded resources.
The answer's first block is JSON: stdout, stderr, result and the returned files; a \
failed run has isError set, with the error, its kind and the traceback.\
"""

SERVER_INSTRUCTIONS: Final = (
    "Use run_python to compute, analyse data or draw charts with Python in a sandbox. "
    "Each call is independent: nothing persists between calls."
)

Code = Annotated[str, Field(description="The Python source to run.")]
Input = Annotated[
    Any,
    Field(
        description="Optional: any JSON value, passed as main(input); the code must then "
        "define main(input)."
    ),
]
Files = Annotated[
    dict[str, str] | None,
    Field(
        description="Optional: files to write into the working directory first, as "
        'relative path -> UTF-8 text (e.g. {"data/sales.csv": "region,amount\\n..."}).'
    ),
]


def build_server(
    client: AsyncClient, *, output_files: Sequence[str] = DEFAULT_OUTPUT_FILES
) -> MCPServer:
    """An MCP server whose tool ``run_python`` sends with ``client``; ``output_files``
    are the glob patterns of the files handed back (the request's own files only when
    the code changed them)."""
    server: MCPServer = MCPServer(
        "pyexec", instructions=SERVER_INSTRUCTIONS, version=__version__, log_level="WARNING"
    )
    patterns = list(output_files)

    async def run_python(code: Code, input: Input = None, files: Files = None) -> CallToolResult:
        return await run_tool(client, code, input, files or {}, patterns)

    server.add_tool(
        run_python,
        name=TOOL_NAME,
        title="Run Python in a sandbox",
        description=TOOL_DESCRIPTION,
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=False,
        ),
    )
    return server


async def run_tool(
    client: AsyncClient,
    code: str,
    input: object,
    files: Mapping[str, str],
    output_files: Sequence[str],
) -> CallToolResult:
    """One ``run_python`` call: ``execute`` when the code defines ``main()`` (or
    ``input`` is given), else ``run_code``; every failure is a result with ``is_error``,
    which the model reads and can act on."""
    has_main = defines_main(code)
    if input is not None and has_main is False:
        return _refused(
            "input is passed to main(input): define main(input) in the code, or leave input out."
        )
    sent = {path: text.encode("utf-8") for path, text in files.items()}
    snippet = not has_main and input is None
    if snippet and SNIPPET_PATH in files:
        return _refused(
            f"files: {SNIPPET_PATH} is where the code itself goes; give the file another name."
        )
    answer: RunResult
    try:
        if snippet:
            answer = await client.run_code(
                code, files=dict(files) or None, output_files=output_files or None
            )
        else:
            answer = await client.execute(
                code,
                input=UNSET if input is None else input,
                files=dict(files) or None,
                output_files=output_files or None,
                coerce_result=True,
            )
    except ScriptError as error:
        if snippet and exited_cleanly(error):
            return _answered(error, error.files, None, sent, code)
        return _failed(error, sent, code if snippet else None)
    except PyexecError as error:
        return _refused(f"{type(error).__name__}: {error}")
    result = answer.result if isinstance(answer, ExecuteResult) else None
    return _answered(answer, answer.files, result, sent, code if snippet else None)


def _answered(
    answer: RunResult | ScriptError,
    files: Sequence[OutputFile],
    result: object,
    sent: Mapping[str, bytes],
    code: str | None,
) -> CallToolResult:
    new = returned_files(files, sent, code=code)
    summary: dict[str, Any] = {
        "stdout": answer.stdout,
        "stderr": answer.stderr,
        "result": result,
        "files": [_listed(output) for output in new],
    }
    return _tool_result(summary, answer, new, is_error=False)


def _failed(error: ScriptError, sent: Mapping[str, bytes], code: str | None) -> CallToolResult:
    new = returned_files(error.files, sent, code=code)
    summary: dict[str, Any] = {
        "error": failure_text(error, snippet=code is not None),
        "kind": error.kind,
        "stdout": error.stdout,
        "stderr": error.stderr,
        "files": [_listed(output) for output in new],
    }
    return _tool_result(summary, error, new, is_error=True)


def _tool_result(
    summary: dict[str, Any],
    answer: RunResult | ScriptError,
    files: Sequence[OutputFile],
    *,
    is_error: bool,
) -> CallToolResult:
    """The summary as JSON text (first, for clients that read only text) and as
    structured content, then one block per returned file."""
    said = notes(answer, files)
    if said:
        summary["notes"] = said
    text = json.dumps(summary, ensure_ascii=False, indent=1)
    blocks: list[ContentBlock] = [TextContent(type="text", text=text)]
    blocks.extend(block for block in map(file_block, files) if block is not None)
    return CallToolResult(content=blocks, structured_content=summary, is_error=is_error)


def _refused(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def _listed(output: OutputFile) -> dict[str, Any]:
    listed: dict[str, Any] = {"path": output.path, "size": output.size}
    if output.content is None:
        listed["omitted"] = output.omitted
    else:
        listed["mime_type"] = output.mime_type
    return listed


def resource_uri(path: str) -> str:
    """The URI a returned file is embedded under: ``pyexec:///`` and its path in the
    sandbox's working directory (a name, not a place the client can open)."""
    return "pyexec:///" + urllib.parse.quote(path)


def file_block(output: OutputFile) -> ContentBlock | None:
    """A returned file as MCP content: an image as an image, UTF-8 text as a text
    resource, anything else as a blob resource; None without content."""
    if output.content is None:
        return None
    mime_type = output.mime_type or "application/octet-stream"
    encoded = base64.b64encode(output.content).decode("ascii")
    if mime_type in IMAGE_TYPES:
        return ImageContent(type="image", data=encoded, mime_type=mime_type)
    uri = resource_uri(output.path)
    try:
        text = output.content.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\0" not in text:
        return EmbeddedResource(
            type="resource", resource=TextResourceContents(uri=uri, mime_type=mime_type, text=text)
        )
    return EmbeddedResource(
        type="resource", resource=BlobResourceContents(uri=uri, mime_type=mime_type, blob=encoded)
    )


async def serve(
    client: AsyncClient, *, output_files: Sequence[str] = DEFAULT_OUTPUT_FILES
) -> None:
    """Serve MCP on this process's stdin and stdout until stdin closes; closes
    ``client`` after."""
    async with client:
        await build_server(client, output_files=output_files).run_stdio_async()


def run_command(command: McpCommand) -> int:
    """``pyexec mcp``: the exit code (UsageError for a URL the client refuses)."""
    connection = command.connection
    try:
        client = AsyncClient(
            connection.url, api_key=connection.api_key, timeout=connection.http_timeout
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    patterns = command.output_files or DEFAULT_OUTPUT_FILES
    anyio.run(functools.partial(serve, client, output_files=patterns))
    return 0
