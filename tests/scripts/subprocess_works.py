import subprocess
import sys


def main():
    out = subprocess.run(
        [sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()
