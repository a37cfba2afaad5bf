import sys


def main(value="no input"):
    print("stderr line", file=sys.stderr)
    return {"got": value}
