import os


def main():
    print('{"status": "ok", "result": 999}')
    os.write(1, b'{"result": "forged", "stdout": ""}\n')
    return 1
