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


# Kernel threads given to `taskgraph train` (set from --threads).
THREADS = 1


def taskgraph(binary, args):
    with tempfile.TemporaryDirectory() as tmp:
        summary = os.path.join(tmp, "summary.json")
        model = os.path.join(tmp, "model.json")
        cmd = [binary, "train", *args, "--output", model, "--summary-json", summary]
        if "--threads" not in args:
            cmd += ["--threads", str(THREADS)]
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
            s, m = taskgraph(binary, ["--data", path, "--model", "ridge",
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
                s, m = taskgraph(binary, ["--data", path, "--model", "logistic",
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


FLIGHTS_ARGS = ["--label", "arr_delay", "--categorical", "carrier,origin,dest", "--model", "ridge",
                "--l2", "1e-6"]


def bench_csv(binary, dataset, workdir, results, repeats=5):
    """Load time of the flights data, gzip and plain, against pandas.read_csv.

    TaskGraph's figure is the summary's load_seconds (reading, decompressing and parsing into
    columns); pandas' is read_csv, which also decompresses .gz. The two alternate, so that a
    change in the machine's load affects both alike, with a short pause before each run, and
    the best of `repeats` is kept.
    """
    import pandas as pd

    plain = os.path.join(workdir, "flights.csv")
    with gzip.open(dataset, "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst)
    for name, path in ((os.path.basename(dataset), dataset), ("flights.csv", plain)):
        pandas_times, loads = [], []
        for _ in range(repeats):
            # A pause before each run: a load started right after the other one ends measured
            # ~60% slower (the machine still busy with the previous run's memory), which
            # penalised whichever side ran second.
            time.sleep(0.5)
            pandas_times.append(timed(lambda: pd.read_csv(path)))
            time.sleep(0.5)
            s, _ = taskgraph(binary, ["--data", path, *FLIGHTS_ARGS, "--max-iterations", "1"])
            loads.append(s["load_seconds"])
        row = {"problem": f"csv load {name}", "pandas_read_csv_seconds": min(pandas_times),
               "taskgraph_load_seconds": min(loads), "speedup": min(pandas_times) / min(loads)}
        results.append(row)
        print(json.dumps(row), flush=True)


def write_numeric_csv(path, rows, cols, seed, block=50_000):
    """A header and `rows` lines of a label y and `cols` features x1.., each printed with six
    decimals. Formatted with array arithmetic (a block of rows at a time), not one Python call
    per number, so a million rows take seconds rather than minutes."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(cols) / np.sqrt(cols)
    with open(path, "wb") as f:
        f.write((",".join(["y"] + [f"x{j + 1}" for j in range(cols)]) + "\n").encode())
        for start in range(0, rows, block):
            x = rng.standard_normal((min(block, rows - start), cols))
            values = np.column_stack([x @ w + 0.5 * rng.standard_normal(len(x)), x])
            f.write(fixed_point_text(values))


def fixed_point_text(values):
    """Rows of comma-separated values like -1.234567 (|v| < 10), one line per row."""
    n, m = values.shape
    units = np.rint(np.clip(np.abs(values), 0, 9.999999) * 1e6).astype(np.int64)
    chars = np.zeros((n, m, 10), dtype=np.uint8)  # 0 marks an absent minus sign
    chars[:, :, 0] = np.where(values < 0, ord("-"), 0)
    chars[:, :, 1] = ord("0") + units // 1_000_000
    chars[:, :, 2] = ord(".")
    for k in range(6):
        chars[:, :, 8 - k] = ord("0") + (units // 10 ** k) % 10
    chars[:, :, 9] = ord(",")
    chars[:, -1, 9] = ord("\n")
    flat = chars.reshape(-1)
    return flat[flat != 0].tobytes()


# Runs argv[1:] and prints its peak resident memory. A child's peak counts the pages it
# shared with its parent between fork and exec, so the command is started from this small
# fresh interpreter, not from the benchmark's (which holds pandas' data frames by then).
PEAK_RSS_WRAPPER = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def peak_rss(cmd):
    """Runs `cmd` and returns the peak resident memory of that process alone, in bytes."""
    out = subprocess.run([sys.executable, "-c", PEAK_RSS_WRAPPER, *cmd], check=True,
                         capture_output=True, text=True).stdout
    return int(out.split()[-1]) * (1 if sys.platform == "darwin" else 1024)


def train_memory(binary, args, workdir, value_bytes=8):
    """Peak RSS of one `taskgraph train` run and the bytes of its matrix (the rows kept after
    dropping missing values, before any validation split, times the features, times
    `value_bytes`: 8 for float64, 4 for --precision float32)."""
    summary = os.path.join(workdir, "summary.json")
    model = os.path.join(workdir, "model.json")
    rss = peak_rss([binary, "train", *args, "--output", model, "--summary-json", summary, "--quiet"])
    with open(summary) as f:
        s = json.load(f)
    with open(model) as f:
        m = json.load(f)
    matrix = (s["rows_read"] - s["rows_dropped"]) * len(m["coefficients"]) * value_bytes
    return rss, matrix, s


def bench_memory(binary, dataset, rows, cols, workdir, results):
    """Peak memory of training runs against the size of their matrix: the flights job as
    scripts/train-flights.sh runs it, and a generated numeric CSV of rows × cols (whose load
    time is also compared with read_csv)."""
    import pandas as pd

    rss, matrix, _ = train_memory(
        binary, ["--data", dataset, *FLIGHTS_ARGS, "--standardize", "--validation-split", "0.2"],
        workdir)
    row = {"problem": "peak memory, flights train (train-flights.sh)", "peak_rss_mb": rss / 1e6,
           "matrix_mb": matrix / 1e6, "ratio": rss / matrix}
    results.append(row)
    print(json.dumps(row), flush=True)
    path = os.path.join(workdir, f"numeric-{rows}x{cols}.csv")
    t0 = time.perf_counter()
    write_numeric_csv(path, rows, cols, seed=3)
    print(f"generated {path}: {os.path.getsize(path) / 1e6:.0f} MB in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    rss, matrix, s = train_memory(
        binary, ["--data", path, "--label", "y", "--model", "ridge", "--l2", "1e-6"], workdir)
    row = {"problem": f"peak memory, {rows}x{cols} numeric csv train", "peak_rss_mb": rss / 1e6,
           "matrix_mb": matrix / 1e6, "ratio": rss / matrix,
           "taskgraph_load_seconds": s["load_seconds"],
           "pandas_read_csv_seconds": timed(lambda: pd.read_csv(path))}
    results.append(row)
    print(json.dumps(row), flush=True)
    rss, matrix, _ = train_memory(
        binary, ["--data", path, "--label", "y", "--model", "ridge", "--l2", "1e-6",
                 "--precision", "float32"], workdir, value_bytes=4)
    row = {"problem": f"peak memory, {rows}x{cols} numeric csv train, float32",
           "peak_rss_mb": rss / 1e6, "matrix_mb": matrix / 1e6, "ratio": rss / matrix}
    results.append(row)
    print(json.dumps(row), flush=True)
    os.remove(path)


def bench_npy(binary, rows, cols, workdir, results, repeats=5):
    """Load time of a float64 .npy file (label first, then `cols` features) against np.load.

    Both read the same file with a warm page cache (it is read once before timing);
    TaskGraph's figure is the summary's load_seconds (reading the file into its row table)
    and, beside it, preprocess_seconds (standardising into the training matrix). The best of
    `repeats` runs of each, alternated, so that a change in the machine's load affects both.
    """
    rng = np.random.default_rng(3)
    data = rng.standard_normal((rows, cols + 1))
    path = os.path.join(workdir, f"npy-{rows}x{cols + 1}.npy")
    np.save(path, data)
    del data
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass
    numpy_times, loads, preprocess = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a = np.load(path)
        numpy_times.append(time.perf_counter() - t0)
        del a
        s, _ = taskgraph(binary, ["--data", path, "--model", "linear",
                                  "--solver", "exact"])
        loads.append(s["load_seconds"])
        preprocess.append(s["preprocess_seconds"])
    size_mb = os.path.getsize(path) / 1e6
    row = {"problem": f"npy load {rows}x{cols + 1} float64 ({size_mb:.0f} MB)",
           "numpy_load_seconds": min(numpy_times), "taskgraph_load_seconds": min(loads),
           "taskgraph_preprocess_seconds": min(preprocess)}
    row["ratio_to_numpy"] = row["taskgraph_load_seconds"] / row["numpy_load_seconds"]
    results.append(row)
    print(json.dumps(row), flush=True)
    os.remove(path)


def timed(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--taskgraph", required=True)
    ap.add_argument("--only", choices=("all", "csv", "npy", "fit"), default="all",
                    help="csv: CSV load times and peak memory only; npy: .npy load time "
                         "against np.load only; fit: solver timings only")
    ap.add_argument("--npy-rows", type=int, default=1_000_000,
                    help="rows of the generated .npy file for the load figure")
    ap.add_argument("--rows", default="200000,1000000")
    ap.add_argument("--cols", type=int, default=100)
    ap.add_argument("--csv-rows", type=int, default=1_000_000,
                    help="rows of the generated numeric CSV for the memory figure")
    ap.add_argument("--csv-cols", type=int, default=100)
    ap.add_argument("--flights", default="datasets/flights.csv.gz")
    ap.add_argument("--skip-csv", action="store_true", help="the same as --only fit")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="TaskGraph's kernel threads (numpy's OpenBLAS uses every core)")
    a = ap.parse_args()
    global THREADS
    THREADS = a.threads
    print(f"TaskGraph threads: {THREADS}; numpy/scikit-learn: OpenBLAS default (every core)",
          flush=True)
    only = "fit" if a.skip_csv else a.only
    try:
        from threadpoolctl import threadpool_info
        print("numpy BLAS:", [(i.get("internal_api"), i.get("version"), i.get("architecture"))
                              for i in threadpool_info()], flush=True)
    except Exception as e:  # informational only
        print("threadpoolctl unavailable:", e)
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        if only in ("all", "csv"):
            bench_csv(a.taskgraph, a.flights, workdir, results)
            bench_memory(a.taskgraph, a.flights, a.csv_rows, a.csv_cols, workdir, results)
        if only in ("all", "npy"):
            bench_npy(a.taskgraph, a.npy_rows, a.cols, workdir, results)
        if only in ("all", "fit"):
            for n in (int(v) for v in a.rows.split(",")):
                bench_problem(a.taskgraph, n, a.cols, workdir, results)
    print("\nsummary")
    for r in results:
        if "ratio" in r:
            print(f"  {r['problem']:<48} peak RSS {r['peak_rss_mb']:7.1f} MB = "
                  f"{r['ratio']:.2f}x the matrix ({r['matrix_mb']:.1f} MB)")
        if "pandas_read_csv_seconds" in r:
            pandas, ours = r["pandas_read_csv_seconds"], r["taskgraph_load_seconds"]
            print(f"  {r['problem']:<48} load: TaskGraph {ours:.3f} s, pandas read_csv "
                  f"{pandas:.3f} s ({pandas / ours:.2f}x)")
        if "numpy_load_seconds" in r:
            print(f"  {r['problem']:<48} load: TaskGraph {r['taskgraph_load_seconds']:.3f} s "
                  f"(then {r['taskgraph_preprocess_seconds']:.3f} s preprocessing), np.load "
                  f"{r['numpy_load_seconds']:.3f} s: {r['ratio_to_numpy']:.2f}x np.load")
        if not {"ratio", "pandas_read_csv_seconds", "numpy_load_seconds"} & r.keys():
            print(f"  {r['problem']:<48} {r.get('rows', ''):>8}  speed-up vs reference: "
                  f"{r['speedup']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
