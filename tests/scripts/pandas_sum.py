import numpy as np
import pandas as pd


def main():
    frame = pd.DataFrame({"a": np.arange(1, 5), "b": [0.5, 1.5, 2.5, 3.5]})
    print(frame.shape)
    return {"sum_a": int(frame["a"].sum()), "mean_b": float(frame["b"].mean())}
