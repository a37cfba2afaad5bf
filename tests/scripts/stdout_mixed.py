import os
import sys


def main():
    print("line one")
    os.write(1, b"raw bytes\n")
    sys.stdout.write("h\u00e9llo \u2603 \U0001F600")
    print("", end="")
    os.write(1, b" bad:\xff\xfe!")
    return None
