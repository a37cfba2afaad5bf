class Weird(Exception):
    def __str__(self):
        raise RuntimeError("no message for you")


def main():
    raise Weird()
