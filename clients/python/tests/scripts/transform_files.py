def main():
    with open("numbers.txt") as stream:
        total = sum(int(line) for line in stream)
    with open("blob.bin", "rb") as stream:
        blob = stream.read()
    with open("total.txt", "w") as stream:
        stream.write(str(total))
    with open("reversed.bin", "wb") as stream:
        stream.write(blob[::-1])
    return total
