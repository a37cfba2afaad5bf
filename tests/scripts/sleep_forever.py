import time


def main():
    print("going to sleep", flush=True)
    time.sleep(3600)
