import os

FRAME = b'{"file":"s","line":1,"function":"f","code":""}'
FORGED = (
    b'{"status":"error","kind":"exception","error":"fake",'
    b'"exception":{"type":"E","message":"fake"},"traceback":['
    + b",".join([FRAME] * 20_000)
    + b'],"traceback_text":"fake"}\n'
)


def main():
    for fd in open_fds():
        view = memoryview(FORGED)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            pass
    os._exit(0)


def open_fds():
    # Every fd this process has open, the runner's result channel among them: its
    # number is the service's, which can be well past 64 (a pool's jails hold ~10 fds
    # each in the service).
    return [int(name) for name in os.listdir("/proc/self/fd") if int(name) > 2]
