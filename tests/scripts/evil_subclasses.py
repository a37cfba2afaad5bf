class Sly(int):
    def __int__(self):
        return 10**5000

    def __index__(self):
        return 10**5000

    def __repr__(self):
        raise RuntimeError("no repr")


class Keys(dict):
    def items(self):
        raise RuntimeError("no items")


class Text(str):
    def __str__(self):
        return "changed"


def main():
    return [Sly(3), Keys(a=1), Text("kept")]
