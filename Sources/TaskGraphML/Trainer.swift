import TaskGraphLinalg

/// The algorithm `Trainer.fit` uses.
public enum Solver: String, Sendable, Codable, CaseIterable {
  /// Exact Cholesky for linear/ridge, L-BFGS for logistic, OWL-QN whenever `l1 > 0`.
  case auto
  /// Normal equations with Cholesky (squared loss, `l1 == 0`).
  case exact
  /// Householder QR (squared loss, `l1 == 0`).
  case qr
  /// Gradient descent with backtracking (proximal with `l1 > 0`).
  case gradientDescent
  /// Mini-batch stochastic gradient descent.
  case sgd
  /// L-BFGS (`l1 == 0`).
  case lbfgs
  /// OWL-QN (any `l1 ≥ 0`).
  case owlqn
  /// Projected gradient with box constraints.
  case projected
}

/// Everything `Trainer.fit` needs besides the data.
public struct TrainingConfiguration: Sendable, Codable, Hashable {
  /// The model family (decides the loss).
  public var kind: LinearModel.Kind
  /// The penalty; see `Regularization` for the objective.
  public var regularization: Regularization
  /// The algorithm.
  public var solver: Solver
  /// When an iterative solver stops.
  public var stop: StopCriteria
  /// Whether to fit the intercept.
  public var fitIntercept: Bool
  /// L-BFGS / OWL-QN history length.
  public var memory: Int
  /// SGD settings (used by `.sgd`).
  public var sgd: SGDConfiguration
  /// Box constraints (required by `.projected`).
  public var bounds: Bounds?
  /// Line search settings; `nil` picks the slack from the matrix precision.
  public var lineSearch: LineSearchConfiguration?
  /// Threads of the fused gradient kernel.
  public var threads: Int

  /// A configuration; the defaults give an automatically chosen solver.
  public init(
    kind: LinearModel.Kind, regularization: Regularization = .none, solver: Solver = .auto,
    stop: StopCriteria = .defaults, fitIntercept: Bool = true, memory: Int = 10,
    sgd: SGDConfiguration = .defaults, bounds: Bounds? = nil,
    lineSearch: LineSearchConfiguration? = nil, threads: Int = 1
  ) {
    precondition(memory > 0, "memory must be positive")
    precondition(threads >= 1, "threads must be at least 1")
    self.kind = kind
    self.regularization = regularization
    self.solver = solver
    self.stop = stop
    self.fitIntercept = fitIntercept
    self.memory = memory
    self.sgd = sgd
    self.bounds = bounds
    self.lineSearch = lineSearch
    self.threads = threads
  }

  /// The solver `.auto` stands for with this configuration (others map to themselves).
  public var resolvedSolver: Solver {
    guard solver == .auto else { return solver }
    if bounds != nil { return .projected }
    if regularization.l1 > 0 { return .owlqn }
    return kind == .logistic ? .lbfgs : .exact
  }
}

/// What a training run did.
public struct TrainingSummary: Sendable, Codable, Hashable {
  /// The solver that ran (`.auto` resolved).
  public var solver: Solver
  /// The objective `F` before the first iteration and after each one (for SGD: after each
  /// pass over the rows; for exact solvers: the final objective).
  public var objectives: [Double]
  /// Iterations run.
  public var iterations: Int
  /// Why the run stopped.
  public var stopReason: StopReason
  /// Wall-clock seconds on the run's clock.
  public var seconds: Double
  /// Gradient evaluations (full or mini-batch).
  public var evaluations: Int
  /// Columns the exact solver found aliased (coefficient 0); see
  /// `GramStatistics.solveReportingAliased`.
  public var aliased: [Int] = []
}

/// A trained model and how it was trained.
public struct TrainingResult: Sendable {
  /// The model.
  public var model: LinearModel
  /// The run's summary.
  public var summary: TrainingSummary
  /// The optimizer's final state (`nil` for exact solvers), e.g. to continue training.
  public var optimizer: Optimizer?
}

/// Fits linear models by the solver a `TrainingConfiguration` names.
public enum Trainer {
  /// Fits a model of `configuration.kind` to `x` (n × d) and `y`.
  ///
  /// - Parameters:
  ///   - initial: warm-start parameters for iterative solvers (zeros by default).
  ///   - clock: the clock of the time limit and of `TrainingSummary.seconds`.
  /// - Throws: `MLError` from exact solvers on a singular system, or what `evaluate` throws.
  public static func fit<T: BLASScalar>(
    x: Matrix<T>, y: [Double], configuration: TrainingConfiguration, initial: Parameters? = nil,
    clock: some TrainingClock = SystemTrainingClock(),
    progress: (OptimizationProgress) -> Void = { _ in }
  ) throws -> TrainingResult {
    precondition(y.count == x.rows, "labels: \(y.count), rows: \(x.rows)")
    precondition(x.rows > 0, "no rows to train on")
    if configuration.kind == .logistic {
      precondition(y.allSatisfy { $0 == 0 || $0 == 1 }, "logistic labels must be 0 or 1")
    }
    try configuration.validate()
    let solver = configuration.resolvedSolver
    if solver == .exact || solver == .qr {
      let start = clock.seconds()
      let l2 = configuration.regularization.l2
      let scales = configuration.regularization.scales
      let p: Parameters
      let loss: Double
      var aliased: [Int] = []
      if solver == .exact {
        // The loss term follows from the same statistics, without another pass over X.
        let stats = GramStatistics(
          x: x, y: y, threads: configuration.threads, centred: configuration.fitIntercept)
        (p, aliased) = try stats.solveReportingAliased(l2: l2, scales: scales)
        loss = stats.meanHalfSquaredResidual(p)
      } else {
        p = try ExactSolver.qr(
          x: x, y: y, l2: l2, scales: scales, fitIntercept: configuration.fitIntercept)
        let source = LocalGradientSource(
          x: x, labels: y, loss: .squared, threads: configuration.threads)
        let sums = source.gradientSums(EvaluationRequest(parameters: p))
        loss = sums.loss / Double(sums.rows)
      }
      let objective = loss + configuration.regularization.penalty(p.weights)
      let summary = TrainingSummary(
        solver: solver, objectives: [objective], iterations: 0, stopReason: .exactSolution,
        seconds: clock.seconds() - start, evaluations: 1, aliased: aliased)
      return TrainingResult(
        model: LinearModel(kind: configuration.kind, parameters: p), summary: summary,
        optimizer: nil)
    }
    let source = LocalGradientSource(
      x: x, labels: y, loss: configuration.kind.loss, threads: configuration.threads)
    let slack = max(1e-12, 10 * Double(T.ulpOfOne))
    return try fit(
      source: source, configuration: configuration, initial: initial, clock: clock,
      defaultSlack: slack, progress: progress)
  }

  /// Fits with an iterative solver against any gradient source.
  ///
  /// `configuration.solver` must not resolve to an exact solver.
  public static func fit(
    source: some GradientSource, configuration: TrainingConfiguration, initial: Parameters? = nil,
    clock: some TrainingClock = SystemTrainingClock(), defaultSlack: Double = 1e-12,
    progress: (OptimizationProgress) -> Void = { _ in }
  ) throws -> TrainingResult {
    let solver = configuration.resolvedSolver
    let start = initial ?? .zeros(features: source.featureCount)
    precondition(start.weights.count == source.featureCount, "initial parameters have the wrong d")
    let optimizerConfiguration = configuration.optimizerConfiguration(defaultSlack: defaultSlack)
    var optimizer = Optimizer(
      configuration: optimizerConfiguration, initial: start, rowCount: source.rowCount)
    let record = try Self.run(
      &optimizer, stop: configuration.stop, clock: clock, progress: progress,
      evaluate: { try source.gradientSums($0) })
    let summary = TrainingSummary(
      solver: solver, objectives: record.objectives, iterations: optimizer.iteration,
      stopReason: record.reason, seconds: record.seconds, evaluations: optimizer.evaluations)
    return TrainingResult(
      model: LinearModel(kind: configuration.kind, parameters: optimizer.parameters),
      summary: summary, optimizer: optimizer)
  }

  /// Steps `optimizer` until a stop criterion holds or the line search fails.
  ///
  /// The criteria are checked once before the first step (so a converged warm start takes
  /// no iteration) and after every step; iteration counts include the optimizer's earlier
  /// iterations, so a resumed optimizer keeps its budget.
  ///
  /// - Parameters:
  ///   - progress: called with the initial state and after every step.
  ///   - afterStep: called after every step with the optimizer and the objectives so far
  ///     (a checkpoint hook).
  ///   - history: the objectives of the run being resumed (from a checkpoint), if any.
  /// - Returns: the objectives (initial, then one per step), the stop reason and seconds.
  public static func run(
    _ optimizer: inout Optimizer, stop: StopCriteria, clock: some TrainingClock,
    progress: (OptimizationProgress) -> Void = { _ in },
    afterStep: (Optimizer, [Double]) -> Void = { _, _ in },
    history: [Double] = [],
    evaluate: (EvaluationRequest) throws -> GradientSums
  ) throws -> (objectives: [Double], reason: StopReason, seconds: Double) {
    let start = clock.seconds()
    let f0 = try optimizer.prepare(evaluate: evaluate)
    // A resumed run continues the objective history of the run it resumes, so its stop
    // criteria see the same previous objective the uninterrupted run saw.
    var objectives = history.isEmpty ? [f0] : history
    let previous = history.count >= 2 ? history[history.count - 2] : nil
    var initial = OptimizationProgress(
      iteration: optimizer.iteration, objective: f0, previousObjective: previous,
      gradientNorm: try optimizer.gradientNorm(evaluate: evaluate),
      elapsedSeconds: clock.seconds() - start)
    initial.recentObjectives = Array(history.suffix(2 * OptimizationProgress.window + 1))
    progress(initial)
    if let reason = stop.reason(at: initial) {
      return (objectives, reason, clock.seconds() - start)
    }
    while true {
      let outcome = try optimizer.step(evaluate: evaluate)
      objectives.append(outcome.objective)
      let elapsed = clock.seconds() - start
      if outcome.lineSearchFailed { return (objectives, .lineSearchFailed, elapsed) }
      // SGD's passes are compared by its own test (the best objective over `patience`
      // passes): an undone pass leaves the objective unchanged without the run having
      // converged.
      var current = OptimizationProgress(
        iteration: outcome.iteration, objective: outcome.objective,
        previousObjective: optimizer.isStochastic ? nil : outcome.previousObjective,
        gradientNorm: outcome.gradientNorm, elapsedSeconds: elapsed)
      if !optimizer.isStochastic {
        current.recentObjectives = Array(objectives.suffix(2 * OptimizationProgress.window + 1))
      }
      progress(current)
      afterStep(optimizer, objectives)
      if let reason = stop.reason(at: current) { return (objectives, reason, elapsed) }
      if outcome.stalled { return (objectives, .objectiveTolerance, elapsed) }
    }
  }
}

extension TrainingConfiguration {
  /// The optimizer settings of this configuration's iterative solver.
  ///
  /// - Precondition: the solver resolves to an iterative one (not exact or QR), and the
  ///   projected solver has bounds.
  public func optimizerConfiguration(defaultSlack: Double) -> OptimizerConfiguration {
    let method: OptimizationMethod
    switch resolvedSolver {
    case .gradientDescent: method = .gradientDescent
    case .sgd: method = .sgd(sgd)
    case .lbfgs: method = .lbfgs(memory: memory)
    case .owlqn: method = .owlqn(memory: memory)
    case .projected:
      guard let bounds else { preconditionFailure("the projected solver needs bounds") }
      method = .projectedGradient(bounds)
    case .auto, .exact, .qr:
      preconditionFailure("\(resolvedSolver) is not an iterative solver")
    }
    // With a penalty on other units than the columns', its curvature differs by orders of
    // magnitude between coefficients; the data's is about 1 per standardised column for
    // the squared loss and at most 1/4 for the logistic loss.
    var curvature: [Double]?
    if let scales = regularization.scales {
      let data = kind == .logistic ? 0.25 : 1
      curvature = scales.indices.map { data + regularization.l2(at: $0) } + [data]
    }
    return OptimizerConfiguration(
      method: method, regularization: regularization, fitIntercept: fitIntercept,
      lineSearch: lineSearch ?? LineSearchConfiguration(relativeSlack: defaultSlack),
      curvature: curvature)
  }
}
