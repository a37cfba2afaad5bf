import builtins
import os


def main():
    return {
        "tmp": sorted(os.listdir("/tmp")),
        "shm": sorted(os.listdir("/dev/shm")),
        "env": os.environ.get("LEFTOVER"),
        "builtin": getattr(builtins, "LEFTOVER", None),
    }
