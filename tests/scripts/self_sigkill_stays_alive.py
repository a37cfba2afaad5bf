import os
import signal


def main():
    os.kill(os.getpid(), signal.SIGKILL)  # we are init of our pid namespace: ignored
    os.kill(1, signal.SIGTERM)
    os.kill(0, signal.SIGKILL)  # our own process group: nothing outside the jail
    try:
        os.kill(-1, signal.SIGKILL)  # every process we may signal: only the jail's
    except ProcessLookupError:
        pass  # there is no other process to signal
    return {"pid": os.getpid(), "ppid": os.getppid(), "alive": True}
