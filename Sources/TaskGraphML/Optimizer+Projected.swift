import TaskGraphLinalg

extension Optimizer {
  /// The gradient the box-constrained method descends: the smooth gradient plus `l1` on the
  /// coefficients (with non-negative lower bounds `‖w‖₁ = Σ wⱼ` is linear on the box).
  func effectiveBoxGradient(_ g: [Double]) -> [Double] {
    let penalty = configuration.regularization
    if penalty.l1 == 0 { return g }
    var e = g
    for j in 0..<penalisedCount { e[j] += penalty.l1(at: j) }
    return e
  }

  /// One projected gradient iteration (Lin 2007, Algorithm 2 with the step-size reuse of
  /// its §3; σ and β are the line search's `armijo` and `shrink`): `θ(α) = P[θ − α g]`, accepted when `F(θ(α)) − F(θ) ≤ σ gᵀ(θ(α) − θ)`. The
  /// search starts from the previous `α`; if that is accepted it grows by `1/β` while the
  /// condition still holds and the point still moves, otherwise it shrinks by `β`.
  mutating func projectedStep(
    _ bounds: Bounds, _ evaluate: (EvaluationRequest) throws -> GradientSums
  ) throws -> StepOutcome {
    // Lin uses σ = 0.01 and β = 0.1; β = 0.5 (the configured shrink factor) lands within a
    // factor 2 of the largest acceptable step instead of 10, which converges much faster on
    // ill-conditioned least squares.
    let sigma = configuration.lineSearch.armijo
    let beta = configuration.lineSearch.shrink
    let before = evaluations
    let cur = try ensureCurrent(evaluate)
    let g = effectiveBoxGradient(cur.gradient)
    let d = penalisedCount
    let base = theta
    let slack = configuration.lineSearch.relativeSlack
    func project(_ alpha: Double) -> [Double] {
      var c = base
      for i in c.indices { c[i] -= alpha * g[i] }
      for j in 0..<d { c[j] = bounds.clamp(c[j], at: j) }
      return c
    }
    // The rounding slack only rescues steps that do not grow: growing on noise would let
    // the step drift above 2/L and stall the iteration at the noise level.
    func test(_ candidate: [Double], _ point: EvaluatedPoint, slack: Double) -> Bool {
      var lin = 0.0
      for i in candidate.indices { lin += g[i] * (candidate[i] - base[i]) }
      guard point.objective.isFinite else { return false }
      let noise = slack * abs(cur.objective)
      return point.objective - cur.objective <= sigma * lin
        || (abs(lin) <= noise && point.objective <= cur.objective + noise)
    }
    var alpha = stepSize
    var candidate = project(alpha)
    var point = try evaluatePoint(candidate, batch: .all, evaluate)
    var accepted: (alpha: Double, theta: [Double], point: EvaluatedPoint)?
    if test(candidate, point, slack: slack) {
      accepted = (alpha, candidate, point)
      for _ in 1..<configuration.lineSearch.maxTrials {
        alpha /= beta
        let next = project(alpha)
        if next == candidate { break }
        candidate = next
        point = try evaluatePoint(candidate, batch: .all, evaluate)
        if !test(candidate, point, slack: 0) { break }
        accepted = (alpha, candidate, point)
      }
    } else {
      for _ in 1..<configuration.lineSearch.maxTrials {
        alpha *= beta
        candidate = project(alpha)
        point = try evaluatePoint(candidate, batch: .all, evaluate)
        if test(candidate, point, slack: slack) {
          accepted = (alpha, candidate, point)
          break
        }
      }
    }
    iteration += 1
    guard let accepted else {
      return outcome(
        previous: cur.objective, objective: cur.objective,
        gradientNorm: norm(projectedGradient(theta, g, bounds)), evaluationsBefore: before,
        failed: true)
    }
    theta = accepted.theta
    current = accepted.point
    stepSize = accepted.alpha
    return outcome(
      previous: cur.objective, objective: accepted.point.objective,
      gradientNorm: norm(
        projectedGradient(theta, effectiveBoxGradient(accepted.point.gradient), bounds)),
      evaluationsBefore: before, failed: false)
  }
}
