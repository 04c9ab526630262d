#if canImport(Dispatch)
  import Dispatch
#endif

/// Why an optimisation stopped.
public enum StopReason: String, Sendable, Codable, CaseIterable {
  /// The iteration limit was reached.
  case maxIterations
  /// The norm of the gradient (pseudo-gradient with L1, projected gradient with bounds)
  /// fell below its tolerance.
  case gradientTolerance
  /// The relative change of the objective fell below its tolerance.
  case objectiveTolerance
  /// The time limit passed.
  case timeLimit
  /// The line search found no acceptable step (usually: rounding prevents more progress).
  case lineSearchFailed
  /// A direct solver computed the solution.
  case exactSolution
}

/// The progress an optimizer reports after an iteration, as seen by stop criteria.
public struct OptimizationProgress: Sendable, Hashable {
  /// Completed iterations.
  public var iteration: Int
  /// The objective after the iteration.
  public var objective: Double
  /// The objective before the iteration (`nil` before the first).
  public var previousObjective: Double?
  /// The objectives of the last iterations up to this one, oldest first (at most
  /// `2·window + 1`; empty where unknown, as for SGD).
  public var recentObjectives: [Double] = []
  /// The (pseudo- or projected) gradient norm after the iteration.
  public var gradientNorm: Double
  /// Seconds since the optimisation started.
  public var elapsedSeconds: Double

  /// A progress record.
  public init(
    iteration: Int, objective: Double, previousObjective: Double?, gradientNorm: Double,
    elapsedSeconds: Double
  ) {
    self.iteration = iteration
    self.objective = objective
    self.previousObjective = previousObjective
    self.gradientNorm = gradientNorm
    self.elapsedSeconds = elapsedSeconds
  }

  /// Iterations per rate estimate in `remainingDecrease`.
  public static let window = 5

  /// The decrease of the objective still to come (`remainingDecrease(_:)` of the recent
  /// objectives, or the last decrease `|Δ|` without them). `nil` before the first
  /// iteration.
  public var remainingDecrease: Double? {
    guard let previousObjective else { return nil }
    if recentObjectives.count >= 2 { return Self.remainingDecrease(recentObjectives) }
    return abs(previousObjective - objective)
  }

  /// The decrease still to come after objectives `f` (oldest first), estimated from their
  /// last decreases: a method converging linearly at rate `r` per `m` iterations, whose
  /// last `m` iterations lowered the objective by `D`, has `D·r/(1 − r)` left. The rate is
  /// that of the last `window` iterations over the `window` before (so that rounding in one
  /// step does not make it), capped at 0.9999; the estimate is at least the last decrease
  /// `|Δ|`, which is all it is with fewer than `2·window + 1` objectives. `nil` for fewer
  /// than two.
  public static func remainingDecrease(_ f: [Double]) -> Double? {
    guard f.count >= 2 else { return nil }
    let k = f.count - 1
    var remaining = abs(f[k - 1] - f[k])
    let m = window
    if f.count >= 2 * m + 1 {
      let before = f[k - 2 * m] - f[k - m]
      let now = f[k - m] - f[k]
      if before > 0 && now > 0 {
        let r = min(now / before, 0.9999)
        remaining = max(remaining, now * r / (1 - r))
      }
    }
    return remaining
  }
}

/// One condition that ends an optimisation.
public enum StopCriterion: Sendable, Codable, Hashable {
  /// Stop after this many iterations.
  case maxIterations(Int)
  /// Stop when the gradient norm is at most this value.
  case gradientNorm(below: Double)
  /// Stop when the decrease still expected (`OptimizationProgress.remainingDecrease`: at
  /// least `|F_prev − F|`, more for a method that converges slowly) is at most
  /// `tol · max(|F_prev|, |F|, 1)`. A method converging linearly (gradient descent) thus
  /// stops near the optimum rather than where its steps merely became small.
  case relativeObjectiveChange(below: Double)
  /// Stop once this many seconds have passed on the run's clock.
  case timeLimit(seconds: Double)

  /// The reason this criterion gives for stopping at `progress`, or `nil` to go on.
  public func reason(at progress: OptimizationProgress) -> StopReason? {
    switch self {
    case .maxIterations(let n):
      return progress.iteration >= n ? .maxIterations : nil
    case .gradientNorm(let tol):
      return progress.gradientNorm <= tol ? .gradientTolerance : nil
    case .relativeObjectiveChange(let tol):
      guard let prev = progress.previousObjective, let remaining = progress.remainingDecrease
      else { return nil }
      let scale = max(abs(prev), abs(progress.objective), 1)
      return remaining <= tol * scale ? .objectiveTolerance : nil
    case .timeLimit(let seconds):
      return progress.elapsedSeconds >= seconds ? .timeLimit : nil
    }
  }
}

/// A set of stop criteria; the optimisation stops when any one of them holds.
public struct StopCriteria: Sendable, Codable, Hashable {
  /// The criteria, checked in order; the first that holds names the stop reason.
  public var criteria: [StopCriterion]

  /// Criteria from a list; at least one must bound the run.
  public init(_ criteria: [StopCriterion]) {
    self.criteria = criteria
  }

  /// At most 1000 iterations, gradient norm 1e-6, relative objective change 1e-12.
  public static var defaults: StopCriteria {
    StopCriteria([
      .maxIterations(1000), .gradientNorm(below: 1e-6), .relativeObjectiveChange(below: 1e-12),
    ])
  }

  /// These criteria plus `other`.
  public func adding(_ other: StopCriterion) -> StopCriteria {
    StopCriteria(criteria + [other])
  }

  /// The reason of the first criterion that holds at `progress`, or `nil`.
  public func reason(at progress: OptimizationProgress) -> StopReason? {
    for c in criteria {
      if let r = c.reason(at: progress) { return r }
    }
    return nil
  }
}

/// A monotonic source of seconds, injectable so time limits can be tested deterministically.
public protocol TrainingClock {
  /// Seconds since an arbitrary fixed origin; never decreases.
  func seconds() -> Double
}

/// The system's monotonic clock.
public struct SystemTrainingClock: TrainingClock, Sendable {
  /// The system clock.
  public init() {}

  /// Seconds of `DispatchTime` uptime (monotonic).
  public func seconds() -> Double {
    Double(DispatchTime.now().uptimeNanoseconds) / 1e9
  }
}
