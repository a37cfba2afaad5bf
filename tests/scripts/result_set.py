def main():
    return {"a": [1, 2, {3}]}
