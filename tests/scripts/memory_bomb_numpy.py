import numpy as np


def main():
    big = np.ones((1 << 30,), dtype=np.float64)
    return float(big.sum())
