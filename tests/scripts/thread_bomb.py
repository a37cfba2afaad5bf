import threading
import time


def main():
    started = 0
    try:
        while True:
            threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
            started += 1
    except RuntimeError as exc:
        return {"started": started, "error": str(exc)}
