import os

FRAME = b'{"file":"s","line":1,"function":"f","code":""}'
FORGED = (
    b'{"status":"error","kind":"exception","error":"fake",'
    b'"exception":{"type":"E","message":"fake"},"traceback":['
    + b",".join([FRAME] * 20_000)
    + b'],"traceback_text":"fake"}\n'
)


def main():
    for fd in range(3, 64):
        view = memoryview(FORGED)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            pass
    os._exit(0)
