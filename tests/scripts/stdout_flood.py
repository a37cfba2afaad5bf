import sys


def main():
    line = "flood " * 1000 + "\n"
    while True:
        sys.stdout.write(line)
