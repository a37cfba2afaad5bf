import os


def main():
    cwd_was_empty = os.listdir(".") == []
    with open("/tmp/note.txt", "w") as handle:
        handle.write("kept for this run only")
    with open("note.txt", "w") as handle:
        handle.write("and this")
    with open("/tmp/note.txt") as tmp, open("/data/note.txt") as cwd:
        return {
            "content": tmp.read(),
            "cwd": os.getcwd(),
            "cwd_content": cwd.read(),
            "cwd_was_empty": cwd_was_empty,
        }
