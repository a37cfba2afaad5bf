import json

value = json.loads("{not json")


def main():
    return value
