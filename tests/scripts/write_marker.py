open("__PATH__", "w").close()


def main():
    return "ran"
