def main():
    raise ValueError("bad \udcff")
