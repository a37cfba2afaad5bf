import sys


def main():
    sys.setrecursionlimit(30)
    value = []
    for _ in range(25):
        value = [value]
    return value
