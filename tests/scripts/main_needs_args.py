def main(x, y):
    return x + y
