# Write a valid report on the runner's result channel at once, then keep the jail busy:
# the answer goes out, but the jail lingers until the service tears it down.
import os


def main():
    report = b'{"status": "ok", "result": "early", "usage": {"cpu_time_ms": 1, "peak_memory_bytes": 1}}\n'
    for fd in open_fds():
        try:
            os.write(fd, report)
        except OSError:
            pass
    while True:
        pass


def open_fds():
    # Every fd this process has open, the runner's result channel among them: its
    # number is the service's, which can be well past 64 (a pool's jails hold ~10 fds
    # each in the service).
    return [int(name) for name in os.listdir("/proc/self/fd") if int(name) > 2]
