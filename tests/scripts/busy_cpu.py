import time


def main():
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    return "busy"
