import TaskGraphML

extension TrainingReport {
  /// Milliseconds per iteration of a fit, 0 for a fit without iterations (an exact solver).
  static func msPerIteration(fitSeconds: Double, iterations: Int) -> Double {
    iterations > 0 ? 1000 * fitSeconds / Double(iterations) : 0
  }

  /// Records whether the run reached its optimum and which features were aliased, with a
  /// warning for each (as scikit-learn's `ConvergenceWarning` and R's aliased
  /// coefficients): a run that stops on its iteration or time limit, or whose line search
  /// fails, says so.
  mutating func noteOutcome(stopReason: StopReason, aliased: [String]) {
    var warnings: [String] = []
    let solver = Solver(rawValue: self.solver)?.flagName ?? self.solver
    switch stopReason {
    case .maxIterations:
      converged = false
      warnings.append(
        "\(solver) stopped at its iteration limit (--max-iterations \(iterations)) before meeting its tolerance: the model is not the optimum; raise --max-iterations\(solver == "gd" || solver == "sgd" ? " or use --solver auto" : "")"
      )
    case .timeLimit:
      converged = false
      warnings.append(
        "\(solver) stopped at its time limit (--time-limit) before meeting its tolerance: the model is not the optimum"
      )
    case .lineSearchFailed:
      converged = false
      warnings.append(
        "\(solver)'s line search found no step that lowers the objective: rounding limits progress; the model may be short of the optimum"
      )
    case .gradientTolerance, .objectiveTolerance, .exactSolution:
      converged = true
    }
    if !aliased.isEmpty {
      aliasedFeatures = aliased
      let shown = aliased.prefix(10).joined(separator: ", ")
      warnings.append(
        "\(aliased.count) aliased feature(s) (collinear with earlier ones and the intercept) get coefficient 0: \(shown)\(aliased.count > 10 ? ", …" : "")"
      )
    }
    self.warnings = warnings.isEmpty ? nil : warnings
  }
}
