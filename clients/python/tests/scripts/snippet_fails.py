import sys

print("snippet ran as", __name__)
print("to stderr", file=sys.stderr)
values = [1, 2, 3]
print(values[10])
