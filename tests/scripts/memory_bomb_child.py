import subprocess
import sys


def main():
    done = subprocess.run(
        [sys.executable, "-c", "x = bytearray(1 << 30); x[::4096] = b'1' * len(x[::4096])"],
    )
    return {"child_returncode": done.returncode}
