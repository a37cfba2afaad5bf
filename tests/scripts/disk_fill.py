def main():
    written = 0
    index = 0
    while True:
        with open(f"/tmp/fill{index}.bin", "wb") as handle:
            handle.write(b"\0" * (5 * 1024 * 1024))
        written += 5
        index += 1
