def main():
    with open("/tmp/big.bin", "wb") as handle:
        for _ in range(20):
            handle.write(b"\0" * (1024 * 1024))
    return "wrote 20 MB"
