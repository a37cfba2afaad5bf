# The x32 ABI's numbering (bit 30 set) of syscalls the filter denies, and of a harmless one.
import ctypes
import errno

libc = ctypes.CDLL(None, use_errno=True)
X32 = 0x40000000


def attempt(number, *args):
    result = libc.syscall(number, *args)
    return "ok" if result != -1 else errno.errorcode.get(ctypes.get_errno(), "?")


def main():
    return {
        "getpid": attempt(39),
        "x32 getpid": attempt(X32 | 39),
        "x32 unshare": attempt(X32 | 272, 0x10000000),
        "x32 bpf": attempt(X32 | 321, 0, 0, 0),
        "x32 last": attempt(X32 | 0x223),
        "x32 past the table": attempt(X32 | 0x3FFF),
    }
