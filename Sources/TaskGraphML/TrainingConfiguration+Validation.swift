/// The one check of a training configuration, used by every entry point (one process,
/// workers, processes) before any work, so that nothing reaches a solver that cannot solve
/// it and no mode quietly fits another model.
///
/// Messages name the command-line flag involved, since that is how most users set them;
/// library users find the property of the same name.
extension TrainingConfiguration {
  /// Checks model × penalty × solver × bounds × SGD settings × stop criteria.
  ///
  /// - Throws: `MLError` with code `.invalidConfiguration` and a one-line message.
  public func validate() throws {
    if let problem = firstProblem() {
      throw MLError(code: .invalidConfiguration, message: problem)
    }
  }

  /// The first reason this configuration cannot be trained, or `nil`.
  public func firstProblem() -> String? {
    let l1 = regularization.l1
    let l2 = regularization.l2
    guard l1.isFinite, l1 >= 0 else { return "--l1 must be a finite number ≥ 0, is \(l1)" }
    guard l2.isFinite, l2 >= 0 else { return "--l2 must be a finite number ≥ 0, is \(l2)" }
    switch kind {
    case .linear where l1 > 0 || l2 > 0:
      return "--model linear takes no penalty; use ridge (--l2), lasso (--l1) or elastic-net"
    case .ridge where l1 > 0:
      return "--model ridge takes --l2 only; use elastic-net for --l1 and --l2"
    case .ridge where l2 == 0:
      return "--model ridge needs --l2 > 0 (without a penalty it is --model linear)"
    case .lasso where l2 > 0:
      return "--model lasso takes --l1 only; use elastic-net for --l1 and --l2"
    case .lasso where l1 == 0:
      return "--model lasso needs --l1 > 0 (without a penalty it is --model linear)"
    case .elasticNet where l1 == 0 || l2 == 0:
      return
        "--model elastic-net needs --l1 > 0 and --l2 > 0 (with one of them 0 use lasso or ridge)"
    default: break
    }
    guard threads >= 1, threads <= 4096 else { return "--threads must be in 1…4096, is \(threads)" }
    guard memory >= 1, memory <= 1000 else { return "memory must be in 1…1000, is \(memory)" }
    for criterion in stop.criteria {
      switch criterion {
      case .maxIterations(let n) where n < 0:
        return "--max-iterations must be ≥ 0, is \(n)"
      case .gradientNorm(let t) where !(t.isFinite && t >= 0),
        .relativeObjectiveChange(let t) where !(t.isFinite && t >= 0):
        return "--tolerance must be a finite number ≥ 0, is \(t)"
      case .timeLimit(let s) where !(s.isFinite && s > 0):
        return "--time-limit must be a finite number of seconds > 0, is \(s)"
      default: break
      }
    }
    if let bounds {
      for j in bounds.lower.indices {
        let (lo, hi) = (bounds.lower[j], bounds.upper[j])
        if lo.isNaN || hi.isNaN { return "--lower/--upper: bound \(j) is not a number" }
        if lo > hi { return "--lower exceeds --upper for coefficient \(j) (\(lo) > \(hi))" }
        if lo == .infinity || hi == -.infinity {
          return "--lower/--upper: coefficient \(j) has an empty range [\(lo), \(hi)]"
        }
      }
    }
    let solver = resolvedSolver
    let name = solver.flagName
    switch solver {
    case .exact, .qr:
      if kind == .logistic {
        return
          "--solver \(name) solves least squares only; for --model logistic use lbfgs (auto), owlqn, gd or sgd"
      }
      if l1 > 0 {
        return
          "--solver \(name) cannot handle an L1 penalty (--model \(kind.flagName)); use owlqn (auto), gd or sgd"
      }
      if bounds != nil {
        return "--solver \(name) cannot honour --lower/--upper/--nonnegative; use projected"
      }
    case .lbfgs:
      if l1 > 0 {
        return
          "--solver lbfgs cannot handle an L1 penalty (--model \(kind.flagName)); use owlqn (auto)"
      }
      if bounds != nil {
        return "--solver lbfgs cannot honour --lower/--upper/--nonnegative; use projected"
      }
    case .gradientDescent, .sgd, .owlqn:
      if bounds != nil {
        return "--solver \(name) cannot honour --lower/--upper/--nonnegative; use projected"
      }
    case .projected:
      guard let bounds else {
        return "--solver projected needs bounds: --lower, --upper or --nonnegative"
      }
      if l1 > 0 && !bounds.lower.allSatisfy({ $0 >= 0 }) {
        return
          "--solver projected handles an L1 penalty only with lower bounds ≥ 0 (--nonnegative); use owlqn without bounds"
      }
    case .auto:
      break
    }
    if solver == .sgd {
      guard sgd.batchSize >= 1 else { return "--batch-size must be at least 1" }
      if let problem = sgd.schedule.firstProblem() { return problem }
    }
    return nil
  }
}

extension LearningRateSchedule {
  /// Why this schedule cannot be used, or `nil`.
  func firstProblem() -> String? {
    switch self {
    case .constant(let eta0), .inverseScaling(let eta0, _), .stepDecay(let eta0, _, _),
      .halvingOnStall(let eta0):
      guard eta0.isFinite, eta0 > 0 else {
        return "--learning-rate must be a finite number > 0, is \(eta0)"
      }
    }
    switch self {
    case .inverseScaling(_, let power) where !(power.isFinite && power >= 0):
      return "the learning rate's power must be a finite number ≥ 0, is \(power)"
    case .stepDecay(_, let factor, let every) where !(factor > 0 && factor <= 1) || every < 1:
      return "step decay needs a factor in (0, 1] and a period ≥ 1"
    default: return nil
    }
  }
}

extension Solver {
  /// The solver's name on the command line.
  public var flagName: String {
    switch self {
    case .gradientDescent: "gd"
    default: rawValue
    }
  }
}

extension LinearModel.Kind {
  /// The model's name on the command line.
  public var flagName: String { self == .elasticNet ? "elastic-net" : rawValue }
}
