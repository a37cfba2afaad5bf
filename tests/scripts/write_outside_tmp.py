import os

TARGETS = [
    "/evil.txt",
    "/usr/evil.txt",
    "/usr/lib/evil.txt",
    "/opt/pyexec/sandbox/evil.txt",
    "/opt/pyexec/sandbox/lib/python3.11/site-packages/numpy/evil.py",
    "/proc/sys/kernel/hostname",
    "/dev/evil",
    "/etc-evil",
]


def main():
    outcome = {}
    for path in TARGETS:
        try:
            with open(path, "w") as handle:
                handle.write("x")
            outcome[path] = "WRITTEN"
        except OSError as exc:
            outcome[path] = type(exc).__name__
    try:
        os.chmod("/usr/bin", 0o777)
        outcome["chmod"] = "CHANGED"
    except OSError as exc:
        outcome["chmod"] = type(exc).__name__
    return outcome
