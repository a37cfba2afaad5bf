import sys


def main():
    print(sys.prefix)
    exit(4)
