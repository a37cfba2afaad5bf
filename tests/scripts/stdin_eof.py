def main():
    try:
        input()
    except EOFError:
        return "eof"
    return "read something"
