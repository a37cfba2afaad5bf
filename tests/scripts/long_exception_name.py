def main():
    raise type("E" * 2_000_000, (Exception,), {})()
