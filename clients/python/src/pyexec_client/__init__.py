"""pyexec's Python client: run Python in the service's nsjail sandbox over HTTP.

    from pyexec_client import Client

    with Client("http://localhost:8080") as client:
        answer = client.execute("def main(x):\n    return x * 2\n", input=21)
        answer.result  # 42

Client blocks, AsyncClient is its asyncio twin; both raise the errors of
``pyexec_client.errors`` (PyexecError and one subclass per thing to do next). The
``pyexec`` command is the command-line tool. docs/client.md is the reference.
"""

from pyexec_client._async_client import AsyncClient
from pyexec_client._client import Client
from pyexec_client._request import UNSET, Unset
from pyexec_client._results import (
    ExecuteResult,
    Health,
    LimitRange,
    Limits,
    OutputFile,
    Package,
    RunResult,
    Runtime,
    RuntimeLimits,
    Usage,
)
from pyexec_client._tokens import IdToken, TokenProvider
from pyexec_client._version import __version__
from pyexec_client.errors import (
    AuthError,
    ClientTimeoutError,
    ConnectionFailedError,
    OverloadedError,
    PyexecError,
    RequestError,
    ScriptError,
    ServerError,
    UnavailableError,
)

__all__ = [
    "UNSET",
    "AsyncClient",
    "AuthError",
    "Client",
    "ClientTimeoutError",
    "ConnectionFailedError",
    "ExecuteResult",
    "Health",
    "IdToken",
    "LimitRange",
    "Limits",
    "OutputFile",
    "OverloadedError",
    "Package",
    "PyexecError",
    "RequestError",
    "RunResult",
    "Runtime",
    "RuntimeLimits",
    "ScriptError",
    "ServerError",
    "TokenProvider",
    "UnavailableError",
    "Unset",
    "Usage",
    "__version__",
]
