import ctypes


def main():
    print("crashing", flush=True)
    ctypes.string_at(0)
