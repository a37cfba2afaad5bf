import os


def main():
    forged = b'{"status": "error", "kind": "memory_limit", "error": "fake", "exit_code": {"x": [1]}, "traceback": "notalist"}\n'
    for fd in range(3, 64):
        try:
            os.write(fd, forged)
        except OSError:
            pass
    os._exit(0)
