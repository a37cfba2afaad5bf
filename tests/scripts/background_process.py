import os
import subprocess
import sys


def main():
    # A detached grandchild that would outlive us if it could.
    subprocess.Popen(
        [sys.executable, "-c", "import time\nwhile True: time.sleep(0.1)"],
        start_new_session=True,
    )
    pid = os.fork()
    if pid == 0:
        os.setsid()
        while True:
            pass
    return "started"
