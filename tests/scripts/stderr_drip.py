# Write to stderr one byte at a time for a while.
import os
import time


def main():
    deadline = time.monotonic() + 1
    count = 0
    while time.monotonic() < deadline:
        os.write(2, b".")
        count += 1
    return count
