def main():
    return {1: "one"}
