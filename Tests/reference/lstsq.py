"""Independent least-squares fitted values for the drop-first test (TaskGraphCLITests).

Reads one JSON request from standard input: {"data": CSV path, "label": column,
"categorical": [columns]}. Reads the file with Python's csv module (so quoted fields with
embedded commas and doubled quotes are parsed independently of TaskGraph's reader),
one-hot encodes every level of each categorical column (no level dropped), puts an
intercept column first, and solves min ||X b - y|| with NumPy's lstsq (the minimum-norm
solution of a rank-deficient design; its fitted values X b are unique whatever the coding).
Writes {"fitted": [one per row, in file order], "rank": rank of X, "columns": columns of X}.
Python is a reference here, never part of the product.
"""
import csv
import json
import sys

import numpy as np


def fitted_values(request):
    with open(request["data"], newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], [r for r in rows[1:] if r]
    label = header.index(request["label"])
    categorical = set(request["categorical"])
    columns = [np.ones(len(body))]
    for k, name in enumerate(header):
        if k == label:
            continue
        values = [r[k] for r in body]
        if name in categorical:
            for level in sorted(set(values)):
                columns.append(np.array([1.0 if v == level else 0.0 for v in values]))
        else:
            columns.append(np.array([float(v) for v in values]))
    x = np.column_stack(columns)
    y = np.array([float(r[label]) for r in body])
    coef, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    return {"fitted": (x @ coef).tolist(), "rank": int(rank), "columns": x.shape[1]}


if __name__ == "__main__":
    json.dump(fitted_values(json.load(sys.stdin)), sys.stdout)
