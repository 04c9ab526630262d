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
}

/// One condition that ends an optimisation.
public enum StopCriterion: Sendable, Codable, Hashable {
  /// Stop after this many iterations.
  case maxIterations(Int)
  /// Stop when the gradient norm is at most this value.
  case gradientNorm(below: Double)
  /// Stop when `|F_prev − F| ≤ tol · max(|F_prev|, |F|, 1)`.
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
      guard let prev = progress.previousObjective else { return nil }
      let scale = max(abs(prev), abs(progress.objective), 1)
      return abs(prev - progress.objective) <= tol * scale ? .objectiveTolerance : nil
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
