import signal


def main():
    signal.signal(signal.SIGXCPU, signal.SIG_IGN)
    while True:
        pass
