import numpy as np


def main():
    return {
        "int": np.int64(7),
        "float": np.float32(0.5),
        "bool": np.bool_(True),
        "array": np.arange(6).reshape(2, 3),
        "nested": [np.float64(1.5), {"x": np.array([1.0, 2.0])}],
    }
