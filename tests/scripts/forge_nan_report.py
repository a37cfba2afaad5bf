import os


def main():
    for fd in open_fds():
        try:
            os.write(fd, b'{"status": "ok", "result": [NaN, Infinity]}\n')
        except OSError:
            pass
    os._exit(0)


def open_fds():
    # Every fd this process has open, the runner's result channel among them: its
    # number is the service's, which can be well past 64 (a pool's jails hold ~10 fds
    # each in the service).
    return [int(name) for name in os.listdir("/proc/self/fd") if int(name) > 2]
