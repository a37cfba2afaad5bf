calls = []


def main():
    calls.append(1)
    print("main ran", len(calls))
    return len(calls)


if __name__ == "__main__":
    main()
