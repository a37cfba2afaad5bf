def helper(d):
    return d["missing"]


def main():
    print("before the error")
    return helper({})
