import time


def main(seconds):
    time.sleep(seconds)
    return "slept"
