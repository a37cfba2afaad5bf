# Lower its own CPU limit to one second, then spin: the kernel SIGKILLs the runner.
import resource


def main():
    resource.setrlimit(resource.RLIMIT_CPU, (1, 1))
    while True:
        pass
