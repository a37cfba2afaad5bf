import os


def main():
    with open("/tmp/note.txt", "w") as handle:
        handle.write("kept for this run only")
    with open("/tmp/note.txt") as handle:
        return {"content": handle.read(), "cwd": os.getcwd()}
