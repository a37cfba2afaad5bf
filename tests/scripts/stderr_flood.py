import sys


def main():
    for _ in range(5000):
        sys.stderr.write("e" * 1000 + "\n")
    return "survived"
