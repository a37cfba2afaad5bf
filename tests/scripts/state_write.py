import os


def main():
    with open("/tmp/leftover.txt", "w") as handle:
        handle.write("from an earlier request")
    with open("/dev/shm/leftover", "w") as handle:
        handle.write("shm")
    os.environ["LEFTOVER"] = "1"
    import builtins

    builtins.LEFTOVER = True
    return sorted(os.listdir("/tmp"))
