"""Side-by-side timings of TaskGraph against scikit-learn and pandas on this machine.

Run through benchmarks/compare.sh, which installs the Python packages into a private
virtual environment (they are a reference, not part of the product). Every figure is
measured in one run so that the machine's load affects both sides alike.
"""
import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np


def generate(n, d, seed, logistic):
    """Correlated Gaussian X (AR(1) correlation 0.5 between neighbouring columns)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, d))
    x = np.empty_like(z)
    x[:, 0] = z[:, 0]
    rho = 0.5
    for j in range(1, d):
        x[:, j] = rho * x[:, j - 1] + np.sqrt(1 - rho * rho) * z[:, j]
    w = rng.standard_normal(d) / np.sqrt(d)
    margin = x @ w + 0.5
    if logistic:
        p = 1 / (1 + np.exp(-margin))
        y = (rng.random(n) < p).astype(np.float64)
    else:
        y = margin + 0.5 * rng.standard_normal(n)
    return x, y


def taskgraph(binary, args):
    with tempfile.TemporaryDirectory() as tmp:
        summary = os.path.join(tmp, "summary.json")
        model = os.path.join(tmp, "model.json")
        cmd = [binary, "train", *args, "--output", model, "--summary-json", summary]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        with open(summary) as f:
            s = json.load(f)
        with open(model) as f:
            m = json.load(f)
        return s, m


def logistic_objective(x, y, w, b, l2):
    z = x @ w + b
    loss = np.mean(np.maximum(z, 0) - y * z + np.log1p(np.exp(-np.abs(z))))
    return loss + 0.5 * l2 * np.dot(w, w)


def squared_objective(x, y, w, b, l2):
    r = x @ w + b - y
    return 0.5 * np.mean(r * r) + 0.5 * l2 * np.dot(w, w)


def bench_problem(binary, n, d, workdir, results):
    from sklearn.linear_model import LogisticRegression, Ridge

    for kind in ("least-squares", "logistic"):
        logistic = kind == "logistic"
        x, y = generate(n, d, seed=7, logistic=logistic)
        path = os.path.join(workdir, f"{kind}-{n}.npy")
        np.save(path, np.column_stack([y, x]))
        row = {"problem": kind, "rows": n, "cols": d}
        if not logistic:
            l2 = 1e-8  # a hair of ridge so both sides solve the same well-posed problem
            t0 = time.perf_counter()
            sk = Ridge(alpha=l2 * n, solver="auto").fit(x, y)
            row["sklearn_fit_seconds"] = time.perf_counter() - t0
            s, m = taskgraph(binary, ["--data", path, "--label", "0", "--model", "ridge",
                                      "--l2", repr(l2), "--solver", "exact"])
            w = np.array(m["coefficients"])
            b = m["intercept"]
            f_tg = squared_objective(x, y, w, b, l2)
            f_sk = squared_objective(x, y, sk.coef_, sk.intercept_, l2)
            row["objective_relative_difference"] = abs(f_tg - f_sk) / abs(f_sk)
            row["max_coefficient_difference"] = float(np.max(np.abs(w - sk.coef_)))
        else:
            l2 = 1.0 / n  # C = 1
            ref = LogisticRegression(C=1 / (l2 * n), solver="lbfgs", tol=1e-14, max_iter=10000)
            ref.fit(x, y)
            f_star = logistic_objective(x, y, ref.coef_[0], ref.intercept_[0], l2)
            # The loosest sklearn tolerance that reaches a relative gap of 1e-8, timed.
            for tol in (1e-6, 1e-8, 1e-10, 1e-12):
                t0 = time.perf_counter()
                sk = LogisticRegression(C=1 / (l2 * n), solver="lbfgs", tol=tol, max_iter=10000).fit(x, y)
                elapsed = time.perf_counter() - t0
                gap = (logistic_objective(x, y, sk.coef_[0], sk.intercept_[0], l2) - f_star) / abs(f_star)
                if gap <= 1e-8:
                    break
            row["sklearn_fit_seconds"] = elapsed
            row["sklearn_tol"] = tol
            row["sklearn_gap"] = gap
            for tol in ("1e-8", "1e-10", "1e-12"):
                s, m = taskgraph(binary, ["--data", path, "--label", "0", "--model", "logistic",
                                          "--l2", repr(l2), "--solver", "lbfgs", "--tolerance", tol])
                w = np.array(m["coefficients"])
                gap = (logistic_objective(x, y, w, m["intercept"], l2) - f_star) / abs(f_star)
                if gap <= 1e-8:
                    break
            row["taskgraph_tolerance"] = tol
            row["taskgraph_gap"] = gap
        row["taskgraph_fit_seconds"] = s["fit_seconds"]
        row["taskgraph_load_seconds"] = s["load_seconds"]
        row["speedup"] = row["sklearn_fit_seconds"] / row["taskgraph_fit_seconds"]
        results.append(row)
        print(json.dumps(row), flush=True)
        os.remove(path)


def bench_csv(binary, dataset, workdir, results):
    import pandas as pd

    plain = os.path.join(workdir, "flights.csv")
    with gzip.open(dataset, "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst)
    best_pd = min(timed(lambda: pd.read_csv(plain)) for _ in range(3))
    loads = []
    for _ in range(3):
        s, _ = taskgraph(binary, ["--data", plain, "--label", "arr_delay", "--categorical",
                                  "carrier,origin,dest", "--model", "ridge", "--l2", "1e-6",
                                  "--max-iterations", "1"])
        loads.append(s["load_seconds"])
    row = {"problem": "csv-parse flights.csv (uncompressed)", "pandas_read_csv_seconds": best_pd,
           "taskgraph_load_seconds": min(loads), "speedup": best_pd / min(loads)}
    results.append(row)
    print(json.dumps(row), flush=True)


def timed(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--taskgraph", required=True)
    ap.add_argument("--rows", default="200000,1000000")
    ap.add_argument("--cols", type=int, default=100)
    ap.add_argument("--flights", default="datasets/flights.csv.gz")
    ap.add_argument("--skip-csv", action="store_true")
    a = ap.parse_args()
    try:
        from threadpoolctl import threadpool_info
        print("numpy BLAS:", [(i.get("internal_api"), i.get("version"), i.get("architecture"))
                              for i in threadpool_info()], flush=True)
    except Exception as e:  # informational only
        print("threadpoolctl unavailable:", e)
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        if not a.skip_csv:
            bench_csv(a.taskgraph, a.flights, workdir, results)
        for n in (int(v) for v in a.rows.split(",")):
            bench_problem(a.taskgraph, n, a.cols, workdir, results)
    print("\nsummary")
    for r in results:
        print(f"  {r['problem']:<40} {r.get('rows', ''):>8}  speed-up vs reference: {r['speedup']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
