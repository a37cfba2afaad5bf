def main():
    print("\udcff printed")
    return {"text": "\ud800", "\udfff": 1}
