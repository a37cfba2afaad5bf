import sys
import warnings


def main():
    print("to stdout")
    print("to stderr", file=sys.stderr)
    warnings.warn("careful")
    return "done"
