def main():
    return {"big": 10**5000}
