import numpy as np


def main():
    return {"values": np.array([1.0, np.nan])}
