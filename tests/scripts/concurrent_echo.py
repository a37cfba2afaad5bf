import os
import time

TOKEN = "__TOKEN__"


def main():
    time.sleep(0.2)
    print(TOKEN, end="")
    with open("/tmp/token", "w") as handle:
        handle.write(TOKEN)
    with open("/tmp/token") as handle:
        return {"token": handle.read(), "files": sorted(os.listdir("/tmp"))}
