"""Independent reference optima for the CLI conformance test (TaskGraphCLITests).

Reads a JSON list of cells from standard input; each names a CSV file, the label, the
model, l1, l2, whether coefficients are bounded below by 0, and the standardisation the
model file records (means and scales per feature; the transform is data preparation, not
optimisation, so it is shared). Writes one optimum objective per cell,
    F(w, b) = (1/n) Σ loss(x·w + b, y) + l1·‖w‖₁ + (l2/2)·‖w‖²,
computed by NumPy's lstsq (least squares), the ridge normal equations, scikit-learn's
ElasticNet / Lasso (coordinate descent, tol 1e-14), LogisticRegression (lbfgs, tol 1e-14)
and LinearRegression(positive=True). A cell with "lower" / "upper" (per coefficient, in the
units of the cell's columns, null for none; l1 = 0) is solved by SciPy's L-BFGS-B on
columns scaled to unit spread, then polished by projected Newton steps (Bertsekas 1982).
Python is a reference here, never part of the product.
"""
import json
import sys
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from scipy.optimize import minimize
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression

warnings.simplefilter("ignore", ConvergenceWarning)


def objective(x, y, w, b, l1, l2, logistic):
    z = x @ w + b
    if logistic:
        loss = np.mean(np.maximum(z, 0) - y * z + np.log1p(np.exp(-np.abs(z))))
    else:
        loss = np.mean(0.5 * (z - y) ** 2)
    return loss + l1 * np.abs(w).sum() + 0.5 * l2 * (w @ w)


def newton_logistic(x, y, l2, w, b):
    """Polishes (w, b) by Newton's method with a backtracking line search. Newton steps do
    not depend on the columns' scales (scikit-learn's lbfgs on raw, badly scaled columns
    can stop short of the optimum); from a point near it they converge quadratically."""
    a = np.column_stack([x, np.ones(len(y))])
    theta = np.append(w, b)
    pen = np.append(np.full(x.shape[1], l2), 0.0)
    n = len(y)

    def f(t):
        return objective(x, y, t[:-1], t[-1], 0.0, l2, True)

    for _ in range(100):
        p = 1 / (1 + np.exp(-(a @ theta)))
        g = a.T @ (p - y) / n + pen * theta
        h = (a * (p * (1 - p))[:, None]).T @ a / n + np.diag(pen)
        step = np.linalg.solve(h, g)
        t, f0 = 1.0, f(theta)
        while t > 1e-10 and f(theta - t * step) > f0:
            t /= 2
        if f(theta - t * step) > f0:
            break
        theta = theta - t * step
        if np.abs(step).max() * t <= 1e-15 * max(1.0, np.abs(theta).max()):
            break
    return theta[:-1], theta[-1]


def bounded(x, y, l2, logistic, lower, upper):
    """The minimum of F over lower ≤ w ≤ upper (the intercept free)."""
    n, d = x.shape
    s = x.std(axis=0)
    s[s == 0] = 1
    a = np.column_stack([x / s, np.ones(n)])
    # Variables t = (w·s, b): the same problem on well-scaled columns.
    lo = np.append(np.where(np.isfinite(lower), lower * s, -np.inf), -np.inf)
    hi = np.append(np.where(np.isfinite(upper), upper * s, np.inf), np.inf)
    pen = np.append(l2 / (s * s), 0.0)

    def fgh(t, hessian=False):
        z = a @ t
        if logistic:
            loss = np.mean(np.maximum(z, 0) - y * z + np.log1p(np.exp(-np.abs(z))))
            p = 1 / (1 + np.exp(-z))
            r, curv = p - y, p * (1 - p)
        else:
            loss = np.mean(0.5 * (z - y) ** 2)
            r, curv = z - y, np.ones(n)
        f = loss + 0.5 * np.sum(pen * t * t)
        g = a.T @ r / n + pen * t
        h = (a * curv[:, None]).T @ a / n + np.diag(pen) if hessian else None
        return f, g, h

    bounds = [(None if np.isinf(l) else l, None if np.isinf(u) else u) for l, u in zip(lo, hi)]
    res = minimize(lambda t: fgh(t)[:2], np.clip(np.zeros(d + 1), lo, hi), jac=True,
                   method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": 100000, "maxfun": 200000, "ftol": 1e-16, "gtol": 1e-14,
                            "maxcor": 30})
    t = np.clip(res.x, lo, hi)
    for _ in range(200):
        f0, g, h = fgh(t, hessian=True)
        at_bound = ((t <= lo + 1e-12) & (g > 0)) | ((t >= hi - 1e-12) & (g < 0))
        free = ~at_bound
        step = np.zeros(d + 1)
        step[free] = np.linalg.solve(h[np.ix_(free, free)], g[free])
        k, moved = 1.0, False
        while k > 1e-12:
            cand = np.clip(t - k * step, lo, hi)
            if fgh(cand)[0] <= f0 + 1e-4 * (g @ (cand - t)):
                moved = not np.array_equal(cand, t)
                t = cand
                break
            k /= 2
        if not moved:
            break
    return float(fgh(t)[0])


def optimum(cell):
    data = np.genfromtxt(cell["data"], delimiter=",", names=True)
    names = list(data.dtype.names)
    y = np.asarray(data[cell["label"]], dtype=np.float64)
    feats = [n for n in names if n != cell["label"]]
    x = np.column_stack([np.asarray(data[n], dtype=np.float64) for n in feats])
    if cell.get("means") is not None:
        x = (x - np.asarray(cell["means"])) / np.asarray(cell["scales"])
    n = len(y)
    l1, l2, model = cell["l1"], cell["l2"], cell["model"]
    logistic = model == "logistic"
    if cell.get("lower") is not None or cell.get("upper") is not None:
        none = [None] * x.shape[1]
        lower = np.array([-np.inf if v is None else v for v in cell.get("lower") or none])
        upper = np.array([np.inf if v is None else v for v in cell.get("upper") or none])
        return bounded(x, y, l2, logistic, lower, upper)
    if cell.get("nonnegative"):
        r = LinearRegression(positive=True).fit(x, y)
        w, b = r.coef_, r.intercept_
    elif logistic:
        r = LogisticRegression(C=1 / (l2 * n), tol=1e-14, max_iter=100000).fit(x, y)
        w, b = newton_logistic(x, y, l2, r.coef_[0], r.intercept_[0])
    elif l1 > 0:
        alpha = l1 + l2
        if l2 > 0:
            r = ElasticNet(alpha=alpha, l1_ratio=l1 / alpha, tol=1e-14, max_iter=1000000)
        else:
            r = Lasso(alpha=l1, tol=1e-14, max_iter=1000000)
        r.fit(x, y)
        w, b = r.coef_, r.intercept_
    else:
        xm, ym = x.mean(axis=0), y.mean()
        xc, yc = x - xm, y - ym
        if l2 > 0:
            w = np.linalg.solve(xc.T @ xc + n * l2 * np.eye(x.shape[1]), xc.T @ yc)
        else:
            w = np.linalg.lstsq(xc, yc, rcond=None)[0]
        b = ym - xm @ w
    return float(objective(x, y, w, b, l1, l2, logistic))


if __name__ == "__main__":
    cells = json.load(sys.stdin)
    json.dump([optimum(c) for c in cells], sys.stdout)
