# Try to take per-user kernel counters that the kernel charges to host root, and the
# host-wide count of AIO contexts.
import ctypes
import errno
import os
import time

libc = ctypes.CDLL(None, use_errno=True)


def attempt(call):
    result = call()
    return "ok" if result != -1 else errno.errorcode.get(ctypes.get_errno(), "?")


def posix_timers():
    """Create POSIX timers (each reserves a pending signal) until the kernel refuses."""
    timer = ctypes.c_void_p()
    count = 0
    while count < 100_000:
        if libc.timer_create(1, None, ctypes.byref(timer)) != 0:  # CLOCK_MONOTONIC
            return count, errno.errorcode.get(ctypes.get_errno(), "?")
        count += 1
    return count, "none"


def main():
    buffer = ctypes.create_string_buffer(256 * 1024)
    timers, timer_error = posix_timers()
    return {
        "inotify_init1": attempt(lambda: libc.inotify_init1(0)),
        "fanotify_init": attempt(lambda: libc.syscall(300, 0, 0)),
        "mq_open": attempt(lambda: libc.syscall(240, b"pyexec", os.O_CREAT | os.O_RDWR, 0o600, None)),
        "io_setup": attempt(lambda: libc.syscall(206, 1, ctypes.byref(ctypes.c_ulong(0)))),
        "mlock_32k": attempt(lambda: libc.mlock(buffer, 32 * 1024)),
        "mlock_256k": attempt(lambda: libc.mlock(buffer, 256 * 1024)),
        "timers": timers,
        "timer_error": timer_error,
        "held": time.sleep(float("__HOLD__")),
    }
