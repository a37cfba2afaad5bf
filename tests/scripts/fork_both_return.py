import os


def main():
    pid = os.fork()
    return {"child": pid == 0}
