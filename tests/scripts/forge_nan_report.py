import os


def main():
    for fd in range(3, 64):
        try:
            os.write(fd, b'{"status": "ok", "result": [NaN, Infinity]}\n')
        except OSError:
            pass
    os._exit(0)
