import sys


def main():
    print("before the failure")
    print("warning: about to fail", file=sys.stderr)
    with open("partial.txt", "w") as stream:
        stream.write("left behind")
    raise ValueError("bad value")
