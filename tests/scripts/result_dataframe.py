import pandas as pd


def main():
    return {"frame": pd.DataFrame({"a": [1, 2]})}
