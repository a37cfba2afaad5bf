"""The runner as each jail receives it: compiled once, by the jail's own interpreter,
and read by every jail from one sealed, read-only memory file.

Compiling the runner's source (~40 KB) cost every jail ~6 ms of CPU, on every request;
unmarshalling its compiled code costs well under a millisecond. marshal's format and
the bytecode change between Python versions, so the code object is made by the
interpreter the jails run (``PYEXEC_SANDBOX_PYTHON``), once per process.

The jailed uid cannot read the service's files, so the code reaches the jail through
an inherited fd: a memfd holding the marshalled code, sealed against any change and
reopened read-only, that nsjail passes through (``--pass_fd``). A one-line bootstrap
reads it with one ``pread``, closes the fd before the runner's first line runs, and
execs the code. It used to travel in argv as base64 (~80 KB): every exec on the way
(setpriv, nsjail, Python) copied it, and Python decoded it to wide characters at
start-up, ~3 ms of CPU per jail that this saves.

The code is compiled under the name ``<string>``, as ``-c`` source is, so the
runner's frames are recognised and dropped from tracebacks as before; with
``optimize=2`` (no docstrings: the runner reads none and has no asserts) and the
``annotations`` future as a compiler flag, so that no ``__future__`` import runs
in the jail.

When it cannot be made (the interpreter is missing, memfd or sealing unsupported),
the source travels in argv as ``-c`` source; the jail's start then reports what is
wrong.
"""

from __future__ import annotations

import fcntl
import functools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

# The jailed uid cannot read the service's files: the runner reaches it as an fd.
RUNNER_SOURCE = (Path(__file__).parent / "runner.py").read_text(encoding="utf-8")
FUTURE_LINE = "from __future__ import annotations\n"
# Run by the jail's interpreter: the runner's source in on stdin, its code out.
_COMPILE = (
    "import __future__,marshal,sys;s=sys.stdin.buffer.read().decode('utf-8');"
    f"s=s.replace({FUTURE_LINE!r},'\\n',1);"
    "sys.stdout.buffer.write(marshal.dumps(compile(s,'<string>','exec',"
    "flags=__future__.annotations.compiler_flag,dont_inherit=True,optimize=2)))"
)
# ``python -c BOOTSTRAP``: read the code, close its fd, then run the code as __main__
# (its last line calls main()). The tuple makes the close happen after the read and
# before the exec, and leaves no name behind in the runner's globals.
BOOTSTRAP_TEMPLATE = (
    "import marshal,posix;exec((marshal.loads(posix.pread({fd},{size},0)),posix.close({fd}))[0])"
)
SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


@dataclass(frozen=True)
class RunnerLaunch:
    """What a jail's command line needs for the runner: the arguments after the
    interpreter's flags, and the fds the jail must be passed (none for source)."""

    args: tuple[str, ...]
    fds: tuple[int, ...] = ()


def compile_runner(sandbox_python: str) -> bytes | None:
    """The runner's code, marshalled by the jail's interpreter; None if it cannot."""
    try:
        done = subprocess.run(
            [sandbox_python, "-I", "-S", "-c", _COMPILE],
            input=RUNNER_SOURCE.encode("utf-8"),
            capture_output=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout or None


def sealed_readonly_fd(data: bytes) -> int | None:
    """A read-only, close-on-exec fd of a memfd holding ``data``, sealed so that
    nothing (a jail included) can change, grow or shrink it; None if the kernel or
    the platform cannot."""
    try:
        writable = os.memfd_create("pyexec-runner", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    except (AttributeError, OSError):
        return None
    try:
        os.write(writable, data)  # a fresh memfd takes one write whole
        fcntl.fcntl(writable, fcntl.F_ADD_SEALS, SEALS)
        return os.open(f"/proc/self/fd/{writable}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    finally:
        os.close(writable)


@functools.cache
def runner_launch(sandbox_python: str) -> RunnerLaunch:
    """How this process's jails get the runner: the compiled code from a sealed memfd,
    or ``-c`` and the source when the code or the memfd cannot be made."""
    code = compile_runner(sandbox_python)
    fd = sealed_readonly_fd(code) if code is not None else None
    if code is None or fd is None:
        return RunnerLaunch(("-c", RUNNER_SOURCE))
    return RunnerLaunch(("-c", BOOTSTRAP_TEMPLATE.format(fd=fd, size=len(code))), (fd,))
