import Foundation

/// The learning rate of mini-batch SGD as a function of the iteration `t` (from 0).
public enum LearningRateSchedule: Sendable, Codable, Hashable {
  /// `η(t) = eta0`.
  case constant(eta0: Double)
  /// `η(t) = eta0 / (1 + t)^power` (scikit-learn's `invscaling`).
  case inverseScaling(eta0: Double, power: Double)
  /// `η(t) = eta0 · factor^⌊t / every⌋`.
  case stepDecay(eta0: Double, factor: Double, every: Int)
  /// `eta0` for the first pass over the rows, halved after every pass that did not lower
  /// the objective over all rows (that pass is undone): the rate decays only as fast as the
  /// optimum's neighbourhood demands, and the objective never rises from pass to pass. The
  /// default of `taskgraph train --solver sgd`.
  case halvingOnStall(eta0: Double)

  /// The learning rate at iteration `t`.
  public func rate(at t: Int) -> Double {
    switch self {
    case .constant(let eta0), .halvingOnStall(let eta0):
      return eta0
    case .inverseScaling(let eta0, let power):
      return eta0 / pow(1 + Double(t), power)
    case .stepDecay(let eta0, let factor, let every):
      precondition(every > 0, "stepDecay: every must be positive")
      var r = eta0
      for _ in 0..<(t / every) { r *= factor }
      return r
    }
  }
}

/// How mini-batches are drawn from the source's rows within a pass.
public enum BatchSampling: Sendable, Codable, Hashable {
  /// Consecutive row ranges of `batchSize`, in order.
  case sequentialRanges
  /// The rows in an order shuffled afresh for every pass by the seeded RNG, taken
  /// `batchSize` at a time (each row once per pass).
  case randomIndices
}

/// Settings of mini-batch stochastic gradient descent.
public struct SGDConfiguration: Sendable, Codable, Hashable {
  /// Rows per mini-batch.
  public var batchSize: Int
  /// The learning rate schedule.
  public var schedule: LearningRateSchedule
  /// How batches are drawn.
  public var sampling: BatchSampling
  /// The seed of the optimizer's `SplitMix64`.
  public var seed: UInt64
  /// A pass improves when it lowers the best objective so far by more than
  /// `tolerance · max(|best|, 1)` (scikit-learn's `tol`, relative).
  public var tolerance: Double
  /// Passes in a row without improvement after which SGD reports itself stalled and the
  /// run stops (scikit-learn's `n_iter_no_change`).
  public var patience: Int
  /// Variance reduction (SVRG, Johnson & Zhang 2013): each batch's gradient is corrected by
  /// the batch's gradient at the pass's starting point and the full gradient there (which
  /// the previous pass's end already evaluated), `ĝ(θ) − ĝ(θ₀) + ∇F(θ₀)`. The correction
  /// vanishes at the optimum, so a constant rate converges to it rather than to a noise
  /// ball, at the price of a second evaluation per batch. Under `.halvingOnStall` the
  /// rate also grows by 1.25 after every pass that lowered the objective ("bold driver"),
  /// so it follows the curvature near the optimum up as well as down.
  public var varianceReduced: Bool

  /// SGD settings; traps on a non-positive batch size.
  public init(
    batchSize: Int = 32, schedule: LearningRateSchedule = .inverseScaling(eta0: 0.01, power: 0.25),
    sampling: BatchSampling = .randomIndices, seed: UInt64 = 42, tolerance: Double = 1e-6,
    patience: Int = 5, varianceReduced: Bool = false
  ) {
    precondition(batchSize > 0, "batchSize must be positive")
    self.batchSize = batchSize
    self.schedule = schedule
    self.sampling = sampling
    self.seed = seed
    self.tolerance = tolerance
    self.patience = patience
    self.varianceReduced = varianceReduced
  }

  enum CodingKeys: String, CodingKey {
    case batchSize, schedule, sampling, seed, tolerance, patience, varianceReduced
  }

  // Checkpoints written before `tolerance` and `patience` existed still load.
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    batchSize = try c.decode(Int.self, forKey: .batchSize)
    schedule = try c.decode(LearningRateSchedule.self, forKey: .schedule)
    sampling = try c.decode(BatchSampling.self, forKey: .sampling)
    seed = try c.decode(UInt64.self, forKey: .seed)
    tolerance = try c.decodeIfPresent(Double.self, forKey: .tolerance) ?? 1e-6
    patience = try c.decodeIfPresent(Int.self, forKey: .patience) ?? 5
    varianceReduced = try c.decodeIfPresent(Bool.self, forKey: .varianceReduced) ?? false
  }

  /// 32 rows per batch, `invscaling` from 0.01 with power 0.25, random indices, seed 42.
  public static var defaults: SGDConfiguration { SGDConfiguration() }
}

/// The iterative method an `Optimizer` runs.
public enum OptimizationMethod: Sendable, Codable, Hashable {
  /// Gradient descent with a backtracking Armijo line search; with `l1 > 0`, proximal
  /// gradient (ISTA) with the matching backtracking condition.
  case gradientDescent
  /// Mini-batch SGD (with `l1 > 0`: a soft-thresholding step after each update).
  case sgd(SGDConfiguration)
  /// Limited-memory BFGS keeping `memory` curvature pairs; requires `l1 == 0`.
  case lbfgs(memory: Int)
  /// Orthant-wise limited-memory quasi-Newton (Andrew & Gao 2007) for `l1 ≥ 0`.
  case owlqn(memory: Int)
  /// Box constraints: projected quasi-Newton (two-metric projection with an L-BFGS metric on
  /// the coordinates not held at a bound) and an Armijo search along the projection arc.
  /// With `l1 > 0` every lower bound must be ≥ 0.
  case projectedGradient(Bounds)
}

/// Parameters of the backtracking line searches.
public struct LineSearchConfiguration: Sendable, Codable, Hashable {
  /// The Armijo constant `c₁` of the sufficient-decrease condition.
  public var armijo: Double
  /// The factor a rejected step is multiplied by, in (0, 1).
  public var shrink: Double
  /// Evaluations tried per iteration before the search gives up.
  public var maxTrials: Int
  /// Relative rounding slack: a trial is also accepted when it misses the sufficient
  /// decrease by at most `relativeSlack · |F|`, so a method can still progress when the
  /// objective's changes drop below its rounding error (the gradient is far more
  /// accurate than the objective near the optimum). 1e-12 suits Double data, 1e-6 Float.
  public var relativeSlack: Double

  /// Line search settings; traps on values out of range.
  public init(
    armijo: Double = 1e-4, shrink: Double = 0.5, maxTrials: Int = 50, relativeSlack: Double = 1e-12
  ) {
    precondition(armijo > 0 && armijo < 1, "armijo must be in (0, 1)")
    precondition(shrink > 0 && shrink < 1, "shrink must be in (0, 1)")
    precondition(maxTrials > 0, "maxTrials must be positive")
    precondition(relativeSlack >= 0, "relativeSlack must be non-negative")
    self.armijo = armijo
    self.shrink = shrink
    self.maxTrials = maxTrials
    self.relativeSlack = relativeSlack
  }

  /// `c₁ = 1e-4`, halve on rejection, 50 trials, slack 1e-12.
  public static var defaults: LineSearchConfiguration { LineSearchConfiguration() }
}

/// Everything that defines an optimisation problem and method, apart from the data.
public struct OptimizerConfiguration: Sendable, Codable, Hashable {
  /// The method.
  public var method: OptimizationMethod
  /// The penalty.
  public var regularization: Regularization
  /// Whether the intercept is fitted; if not it stays at its initial value.
  public var fitIntercept: Bool
  /// Line search settings.
  public var lineSearch: LineSearchConfiguration
  /// An estimate of the objective's Hessian diagonal, one positive entry per parameter
  /// (the intercept last), which L-BFGS and OWL-QN take as the shape of their initial
  /// inverse Hessian `γ·diag(1/hᵢ)` (scaled as usual by `γ = sᵀy / yᵀdiag(1/h)y`). It
  /// matters when the curvature differs by orders of magnitude between coordinates, as a
  /// penalty on original units does on standardised ones; `nil`: the identity.
  public var curvature: [Double]?

  /// A configuration; traps if the method cannot handle the penalty.
  public init(
    method: OptimizationMethod, regularization: Regularization = .none, fitIntercept: Bool = true,
    lineSearch: LineSearchConfiguration = .defaults, curvature: [Double]? = nil
  ) {
    precondition(
      curvature?.allSatisfy { $0.isFinite && $0 > 0 } ?? true, "curvature must be finite and > 0")
    switch method {
    case .lbfgs(let m):
      precondition(m > 0, "L-BFGS memory must be positive")
      precondition(regularization.l1 == 0, "L-BFGS needs l1 == 0; use OWL-QN for an L1 penalty")
    case .owlqn(let m):
      precondition(m > 0, "OWL-QN memory must be positive")
    case .projectedGradient(let bounds):
      precondition(
        regularization.l1 == 0 || bounds.lower.allSatisfy { $0 >= 0 },
        "projected gradient handles l1 > 0 only with non-negative lower bounds")
    case .gradientDescent, .sgd:
      break
    }
    self.method = method
    self.regularization = regularization
    self.fitIntercept = fitIntercept
    self.lineSearch = lineSearch
    self.curvature = curvature
  }
}
