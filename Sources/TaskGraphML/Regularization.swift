/// The penalty of the training objective.
///
/// The objective every solver in this module minimises is
///
///     F(w, b) = (1/n) Σᵢ loss(xᵢ·w + b, yᵢ) + l1·‖w‖₁ + (l2/2)·‖w‖²
///
/// over `n` rows, with the squared loss `½(z − y)²` or the logistic loss; the intercept `b`
/// is NOT penalised. In terms of scikit-learn's parameters:
///
/// - `Ridge(alpha)` ↔ `l2 = alpha / n` (scikit-learn's ridge sums, not averages, the loss);
/// - `Lasso(alpha)` ↔ `l1 = alpha`;
/// - `ElasticNet(alpha, l1_ratio)` ↔ `l1 = alpha·l1_ratio`, `l2 = alpha·(1 − l1_ratio)`;
/// - `LogisticRegression(C)` ↔ `l2 = 1 / (C·n)`.
///
/// With `scales`, the coefficients the solvers see are in other units than the ones
/// penalised: coefficient `vⱼ` stands for `wⱼ = vⱼ / scales[j]`, and the penalty is
/// `l1·Σ|vⱼ|/sⱼ + (l2/2)·Σ(vⱼ/sⱼ)²`. Training on standardised columns
/// (`(x − μ)/s`) with the penalty of the original ones is how an unstandardised problem
/// is solved well conditioned: the objective, and the model in original units, are those
/// of the original problem.
public struct Regularization: Sendable, Codable, Hashable {
  /// The weight of `‖w‖₁`, ≥ 0.
  public var l1: Double
  /// The weight of `½‖w‖²`, ≥ 0.
  public var l2: Double
  /// Per coefficient, the factor its units are scaled by relative to the penalised ones
  /// (finite, > 0); `nil`: every factor is 1.
  public var scales: [Double]?

  /// A penalty of `l1·‖w‖₁ + (l2/2)·‖w‖²`; traps on negative or non-finite weights.
  public init(l1: Double = 0, l2: Double = 0) {
    precondition(l1 >= 0 && l1.isFinite, "l1 must be finite and non-negative, is \(l1)")
    precondition(l2 >= 0 && l2.isFinite, "l2 must be finite and non-negative, is \(l2)")
    self.l1 = l1
    self.l2 = l2
  }

  /// This penalty applied to coefficients in units scaled by `scales` (see the type's
  /// documentation); traps unless every scale is finite and positive.
  public func scaled(by scales: [Double]) -> Regularization {
    precondition(scales.allSatisfy { $0.isFinite && $0 > 0 }, "scales must be finite and > 0")
    var r = self
    r.scales = scales.allSatisfy { $0 == 1 } ? nil : scales
    return r
  }

  /// The L1 weight of coefficient `j`: `l1 / scales[j]`.
  @inline(__always)
  public func l1(at j: Int) -> Double {
    guard let scales else { return l1 }
    return l1 / scales[j]
  }

  /// The L2 weight of coefficient `j`: `l2 / scales[j]²`.
  @inline(__always)
  public func l2(at j: Int) -> Double {
    guard let scales else { return l2 }
    return l2 / (scales[j] * scales[j])
  }

  /// No penalty.
  public static var none: Regularization { Regularization() }

  /// scikit-learn's `Ridge(alpha)` over `rows` rows: `l2 = alpha / rows`.
  public static func ridge(alpha: Double, rows: Int) -> Regularization {
    precondition(rows > 0, "rows must be positive")
    return Regularization(l2: alpha / Double(rows))
  }

  /// scikit-learn's `Lasso(alpha)`: `l1 = alpha`.
  public static func lasso(alpha: Double) -> Regularization { Regularization(l1: alpha) }

  /// scikit-learn's `ElasticNet(alpha, l1_ratio)`.
  public static func elasticNet(alpha: Double, l1Ratio: Double) -> Regularization {
    precondition(l1Ratio >= 0 && l1Ratio <= 1, "l1Ratio must be in [0, 1]")
    return Regularization(l1: alpha * l1Ratio, l2: alpha * (1 - l1Ratio))
  }

  /// scikit-learn's `LogisticRegression(C)` over `rows` rows: `l2 = 1 / (C·rows)`.
  public static func logistic(c: Double, rows: Int) -> Regularization {
    precondition(c > 0 && rows > 0, "C and rows must be positive")
    return Regularization(l2: 1 / (c * Double(rows)))
  }

  /// `l1·‖w‖₁ + (l2/2)·‖w‖²` (with `scales`, of `wⱼ = vⱼ/sⱼ`). O(d).
  public func penalty(_ weights: [Double]) -> Double {
    var a = 0.0
    var s = 0.0
    for (j, v) in weights.enumerated() {
      let w = scales.map { v / $0[j] } ?? v
      a += abs(w)
      s += w * w
    }
    return l1 * a + 0.5 * l2 * s
  }
}
