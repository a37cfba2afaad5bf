# Leave three processes busy, and keep the runner itself from exiting after its report
# (it waits on posix.read for the service's go-ahead): the answer goes out, and only
# the service can end the jail.
import os
import posix


def main():
    for _ in range(3):
        if os.fork() == 0:
            while True:
                pass

    def busy_read(fd, size):
        while True:
            pass

    posix.read = busy_read
    return "answered"
