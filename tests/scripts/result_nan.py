def main():
    return {"x": [1.0, float("nan")]}
