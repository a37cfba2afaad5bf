"""The runner as each jail receives it: compiled once, by the jail's own interpreter.

Compiling the runner's source (~40 KB) cost every jail ~6 ms of CPU, on every request;
unmarshalling its compiled code costs ~0.3 ms. marshal's format and the bytecode
change between Python versions, so the code object is made by the interpreter the
jails run (``PYEXEC_SANDBOX_PYTHON``), once per process, and travels in argv as base64
beside a one-line bootstrap that execs it (the jailed uid cannot read the service's
files). It is compiled under the name ``<string>``, as ``-c`` source is, so the
runner's frames are recognised and dropped from tracebacks as before.

When it cannot be made (the interpreter is missing, or the code would not fit in one
argument), the source travels as it did; the jail's start then reports what is wrong.
"""

from __future__ import annotations

import base64
import functools
import subprocess
from pathlib import Path

# The jailed uid cannot read the service's files: the runner travels in argv.
RUNNER_SOURCE = (Path(__file__).parent / "runner.py").read_text(encoding="utf-8")
# Run as ``python -c BOOTSTRAP <code> <runner's args>``: the code leaves argv before
# the runner reads its flags, and runs as __main__ (its last line calls main()).
BOOTSTRAP = "import binascii,marshal,sys;exec(marshal.loads(binascii.a2b_base64(sys.argv.pop(1))))"
_COMPILE = (
    "import marshal,sys;sys.stdout.buffer.write(marshal.dumps(compile("
    "sys.stdin.buffer.read().decode('utf-8'),'<string>','exec',dont_inherit=True)))"
)
# Linux caps one argument at 32 pages (MAX_ARG_STRLEN), NUL included.
MAX_ARGUMENT_BYTES = 32 * 4096 - 1


@functools.cache
def runner_args(sandbox_python: str) -> tuple[str, ...]:
    """What follows the interpreter's flags on a jail's command line: the bootstrap and
    the compiled runner, or ``-c`` and the source when the code cannot be made."""
    try:
        done = subprocess.run(
            [sandbox_python, "-I", "-S", "-c", _COMPILE],
            input=RUNNER_SOURCE.encode("utf-8"),
            capture_output=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return ("-c", RUNNER_SOURCE)
    code = base64.b64encode(done.stdout).decode("ascii")
    if not done.stdout or len(code) > MAX_ARGUMENT_BYTES:
        return ("-c", RUNNER_SOURCE)
    return ("-c", BOOTSTRAP, code)
