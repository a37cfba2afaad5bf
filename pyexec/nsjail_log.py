"""Reading nsjail's log: how a jail ended, and why a jail failed to start (in words).

nsjail writes its log to a pipe of ours (``--log_fd``). Two things are read from
it: the line that says how the jail's init ended (a signal or an exit status: the
only way to tell ``os._exit(137)`` from a SIGKILL), and, when a jail cannot start,
a sentence an operator can act on. The raw log is for the service's own logs only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EXIT_LINE = re.compile(
    rb"pid=(\d+) \(\[STANDALONE MODE\]\) "
    rb"(?:terminated with signal: (SIG\w+)|exited with status: (\d+))"
)
# Fragments that must all be on one error line of nsjail's log -> the cause and the
# fix, in words an operator can act on. Warning lines never count: nsjail warns about
# optional mounts that are absent on some kernels (/proc/sched_debug on 6.x: "No such
# file or directory"), which says nothing about why a jail failed.
DIAGNOSES = (
    (
        (
            ("clone(",),
            ("CLONE_NEW",),
            ("unshare",),
            ("Operation not permitted",),
            ("mandatory point",),
        ),
        "this host does not let the service create Linux namespaces, or mount the "
        "jail's /proc (procfs subset=pid needs Linux 5.8 or later). On Cloud Run, "
        "deploy with --execution-environment gen2; with Docker or Podman, run the "
        "container with --privileged.",
    ),
    (
        (("x32",),),
        "the jail's seccomp filter does not stop x32 system calls on this kernel, so "
        "its denylist could be bypassed. The nsjail that `make setup` and the image "
        "build denies them itself: rebuild it, or set PYEXEC_NSJAIL to it.",
    ),
    (
        (
            ("runner stderr:", "MemoryError"),
            ("runner stderr:", "Memory allocation"),  # OpenBLAS's own words
            ("runner stderr:", "Cannot allocate memory"),
        ),
        "the jail's Python ran out of memory while it started (importing the "
        "pre-imported modules). Without cgroups memory_mb is RLIMIT_AS, address space, "
        "and numpy and pandas reserve more of it than they use: raise PYEXEC_MEMORY_MB "
        "(256 is enough) or empty PYEXEC_PREIMPORT.",
    ),
    (
        (("execve", "No such file or directory"),),
        "the sandbox's Python environment is missing; run `make setup` (or rebuild the image).",
    ),
)
UNKNOWN_CAUSE = "the jail failed its start-up self-test; the service log has the details."


@dataclass(frozen=True)
class Ending:
    """How the jail's init ended: its host pid and a signal name or an exit status."""

    pid: int
    signal: str | None
    status: int | None


def ending(log: bytes) -> Ending | None:
    """The jail's ending from nsjail's log, or None when the log does not say."""
    found = EXIT_LINE.search(log)
    if found is None:
        return None
    signal_name = found.group(2).decode() if found.group(2) else None
    status = int(found.group(3)) if found.group(3) else None
    return Ending(int(found.group(1)), signal_name, status)


def summary(log: bytes) -> str:
    """The last few error or warning lines (else the last lines), for operators."""
    lines = log.decode("utf-8", "replace").strip().splitlines()
    wanted = [line for line in lines if "[E]" in line or "[F]" in line or "[W]" in line]
    return " | ".join((wanted or lines)[-5:]) or "no log"


def diagnose(reason: str) -> str:
    """One sentence naming why the jail failed and what fixes it, from the error
    lines of ``reason`` (a summary: lines joined by " | ")."""
    lines = [line for line in reason.split(" | ") if "[W]" not in line and "[D]" not in line]
    for alternatives, sentence in DIAGNOSES:
        for fragments in alternatives:
            if any(all(fragment in line for fragment in fragments) for line in lines):
                return sentence
    return UNKNOWN_CAUSE
