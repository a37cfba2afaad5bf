"""The scripts the host harness sends, each with the answers that count as right.

One catalog for the check set and the hostile load, so that both judge a kind of
request the same way. Every script carries a per-request token: an answer meant for
another request, or a forged one, is caught. Limits are chosen for a one-CPU UML
guest, where page faults and forks cost far more than on the host: the attacks get
the longest wall time the service allows (60 s) so that the limit they attack is
the one they hit, not the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Answer = tuple[int, dict[str, Any]]

# A right answer is a 400 of one of these kinds (the attack's own kinds).
OWN_KINDS = {
    "memory_bomb": {"memory_limit"},
    "fork_bomb": {"timeout", "cpu_limit"},
    "cpu_hog": {"cpu_limit"},
    "stdout_flood": {"output_limit"},
    # 100 children of 250 MB: over RLIMIT_AS (per process) each child gets a
    # MemoryError; the run ends by its clock, or by the kernel's OOM killer.
    "forker": {"timeout", "memory_limit"},
}


@dataclass(frozen=True)
class Request:
    """One request: its name, body and how to judge the answer."""

    name: str
    body: dict[str, Any]
    token: str
    expect: Callable[[int, dict[str, Any]], bool] = field(repr=False)


def _script(template: str, token: str) -> str:
    return template.replace("TOKEN", token)


HELLO = 'def main():\n    print("TOKEN", end="")\n    return {"token": "TOKEN"}\n'
PANDAS = (
    "import pandas as pd\ndef main():\n"
    '    return {"token": "TOKEN", "sum": int(pd.Series([1, 2, 3]).sum())}\n'
)
MEMORY_BOMB = (
    "# TOKEN\ndef main():\n    hog = []\n    while True:\n"
    "        hog.append(bytearray(32 * 1024 * 1024))\n"
)
FORK_BOMB = (
    "# TOKEN\nimport os\ndef main():\n    while True:\n        try:\n            os.fork()\n"
    "        except OSError:\n            pass\n"
)
CPU_HOG = "# TOKEN\ndef main():\n    n = 0\n    while True:\n        n += 1\n"
STDOUT_FLOOD = (
    'import sys\ndef main():\n    while True:\n        sys.stdout.write("TOKEN " * 1000)\n'
)
# Each child takes up to 250 MB (1 MB at a time, so RLIMIT_AS stops it with a
# MemoryError rather than refusing one big block) and holds it.
FORKER = """# TOKEN
import os, time
def main():
    children = 0
    for _ in range(100):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            hog = []
            try:
                for _ in range(250):
                    hog.append(bytearray(1024 * 1024))
            except MemoryError:
                pass
            time.sleep(120)
            os._exit(0)
        children += 1
    time.sleep(120)
    return children
"""


def _attack(name: str) -> Callable[[int, dict[str, Any]], bool]:
    return lambda status, body: status == 400 and body.get("kind") in OWN_KINDS[name]


def make(name: str, token: str) -> Request:
    """The request ``name`` carrying ``token``."""
    if name == "hello":
        return Request(
            name,
            {"script": _script(HELLO, token)},
            token,
            lambda s, b: s == 200 and b.get("result") == {"token": token} and b["stdout"] == token,
        )
    if name == "pandas":
        return Request(
            name,
            {"script": _script(PANDAS, token)},
            token,
            lambda s, b: s == 200 and b.get("result") == {"token": token, "sum": 6},
        )
    if name == "memory_bomb":
        # The most CPU the service allows: in a UML guest, faulting in 256 MB takes
        # 7-11 s of CPU, past the default 10 s (hosts/README.md).
        body = {"script": _script(MEMORY_BOMB, token), "timeout_seconds": 60, "cpu_seconds": 60}
    elif name == "fork_bomb":
        body = {"script": _script(FORK_BOMB, token), "timeout_seconds": 1}
    elif name == "cpu_hog":
        body = {"script": _script(CPU_HOG, token), "cpu_seconds": 1, "timeout_seconds": 60}
    elif name == "stdout_flood":
        body = {"script": _script(STDOUT_FLOOD, token), "timeout_seconds": 60}
        own = _attack(name)
        return Request(
            name,
            body,
            token,
            lambda s, b: own(s, b) and str(b.get("stdout", "")).startswith(token),
        )
    elif name == "forker":
        body = {"script": _script(FORKER, token), "timeout_seconds": 60}
    else:
        raise ValueError(f"unknown request {name!r}")
    return Request(name, body, token, _attack(name))


def judge(request: Request, answer: Answer | str) -> bool:
    """True when ``answer`` (status and body, or a transport error) is right."""
    if isinstance(answer, str):
        return False
    try:
        return bool(request.expect(*answer))
    except (KeyError, TypeError, AttributeError):
        return False


def kind_of(answer: Answer | str) -> str:
    """A short label of an answer for the report: the kind, 200, or the error."""
    if isinstance(answer, str):
        return answer
    status, body = answer
    if status == 200:
        return "ok"
    return str(body.get("kind", status)) if isinstance(body, dict) else str(status)


def describe(answer: Answer | str) -> str:
    """An answer in one line for the report: status, kind, usage, the error's start."""
    if isinstance(answer, str):
        return f"no answer ({answer})"
    status, body = answer
    usage = body.get("usage", {}) if isinstance(body, dict) else {}
    text = f"{status} {kind_of(answer)}"
    if usage:
        wall, cpu = usage.get("wall_time_ms") or 0, usage.get("cpu_time_ms") or 0
        peak = int(usage.get("peak_memory_bytes") or 0) >> 20
        text += f", wall {wall:.0f} ms, cpu {cpu:.0f} ms, peak {peak} MiB"
    if status != 200 and isinstance(body, dict):
        error = str(body.get("error", ""))
        # Both ends: a timeout says what it hit first, a 503 names the cause last.
        text += f": {error if len(error) <= 200 else error[:70] + ' ... ' + error[-125:]}"
    return text
