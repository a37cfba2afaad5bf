def main():
    return "x" * (2 * 1024 * 1024)
