def main():
    yield 1
