def main():
    print("hello from the jail")
    return {"hello": "world"}
