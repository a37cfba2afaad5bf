import time


def main():
    time.sleep(2)
    return "slept"
