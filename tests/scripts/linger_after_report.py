# Write a valid report on the runner's result channel at once, then keep the jail busy:
# the answer goes out, but the jail lingers until the service tears it down.
import os


def main():
    report = b'{"status": "ok", "result": "early", "usage": {"cpu_time_ms": 1, "peak_memory_bytes": 1}}\n'
    for fd in range(3, 64):
        try:
            os.write(fd, report)
        except OSError:
            pass
    while True:
        pass
