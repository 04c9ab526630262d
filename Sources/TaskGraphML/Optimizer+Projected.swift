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

  /// The curvature pairs the projected method keeps (as L-BFGS's default memory).
  static var projectedMemory: Int { 10 }

  /// One projected quasi-Newton iteration: two-metric projection (Bertsekas 1982; the
  /// `minConf_TMP` method of Schmidt, Kim & Sra) with an L-BFGS metric.
  ///
  /// The *binding* coordinates are those within ε of a bound whose gradient pushes out of the
  /// box (ε = min(10⁻³, ‖θ − P[θ − g]‖), shrinking to 0 at the optimum): they take a
  /// gradient step, which the projection stops at the bound. The others take the L-BFGS
  /// direction computed on them alone (the two-loop recursion over the pairs restricted to
  /// them, with the diagonal initial metric of `OptimizerConfiguration.curvature` when there
  /// is one). Trial points `P[θ + t·d]` backtrack from `t = 1` and are accepted on the
  /// Armijo condition for the projected move, `F(θ(t)) − F(θ) ≤ σ gᵀ(θ(t) − θ)`. A
  /// projected gradient step (the previous method) needed thousands of iterations where the
  /// Hessian is ill-conditioned, as logistic regression on nearly separable data makes it.
  mutating func projectedStep(
    _ bounds: Bounds, _ evaluate: (EvaluationRequest) throws -> GradientSums
  ) throws -> StepOutcome {
    let before = evaluations
    let cur = try ensureCurrent(evaluate)
    let g = effectiveBoxGradient(cur.gradient)
    let d = penalisedCount
    let pgNorm = norm(projectedGradient(theta, g, bounds))
    if pgNorm == 0 {
      iteration += 1
      return outcome(
        previous: cur.objective, objective: cur.objective, gradientNorm: 0,
        evaluationsBefore: before, failed: false)
    }
    var gap = 0.0
    for j in 0..<d {
      let moved = bounds.clamp(theta[j] - g[j], at: j) - theta[j]
      gap += moved * moved
    }
    let epsilon = min(1e-3, gap.squareRoot())
    var free = [Bool](repeating: true, count: theta.count)
    for j in 0..<d {
      let atLower = theta[j] <= bounds.lower[j] + epsilon && g[j] > 0
      let atUpper = theta[j] >= bounds.upper[j] - epsilon && g[j] < 0
      free[j] = !(atLower || atUpper)
    }
    var direction = maskedTwoLoop(g, free: free)
    if !(dot(g, direction) < 0) {
      // Not a descent direction (stale curvature information): start again from the gradient.
      history.removeAll()
      direction = maskedTwoLoop(g, free: free)
    }
    for j in 0..<d where !free[j] { direction[j] = -g[j] }
    func project(_ t: Double) -> [Double] {
      var c = theta
      for i in c.indices { c[i] += t * direction[i] }
      for j in 0..<d { c[j] = bounds.clamp(c[j], at: j) }
      return c
    }
    var t = history.isEmpty ? min(1, 1 / norm(direction)) : 1
    for _ in 0..<configuration.lineSearch.maxTrials {
      let candidate = project(t)
      let point = try evaluatePoint(candidate, batch: .all, evaluate)
      var decrease = 0.0
      for i in candidate.indices { decrease += g[i] * (candidate[i] - theta[i]) }
      if candidate != theta,
        accepts(new: point.objective, old: cur.objective, decrease: decrease)
      {
        recordCurvature(
          to: candidate, gradient: point.gradient, from: cur, memory: Self.projectedMemory)
        theta = candidate
        current = point
        stepSize = t
        iteration += 1
        return outcome(
          previous: cur.objective, objective: point.objective,
          gradientNorm: norm(
            projectedGradient(theta, effectiveBoxGradient(point.gradient), bounds)),
          evaluationsBefore: before, failed: false)
      }
      t *= configuration.lineSearch.shrink
    }
    iteration += 1
    return outcome(
      previous: cur.objective, objective: cur.objective, gradientNorm: pgNorm,
      evaluationsBefore: before, failed: true)
  }

  /// `−H g` over the coordinates where `free` is true (0 elsewhere), for the L-BFGS
  /// inverse-Hessian approximation built from the stored pairs restricted to them: the
  /// textbook two-loop recursion, skipping a pair whose restricted `sᵀy` is not positive.
  /// The initial metric is `γ·diag(1/h)` with `h` the configuration's curvature (1 without
  /// one) and `γ = sᵀy / yᵀdiag(1/h)y` of the newest usable pair.
  func maskedTwoLoop(_ g: [Double], free: [Bool]) -> [Double] {
    let n = g.count
    let h = configuration.curvature ?? [Double](repeating: 1, count: n)
    var q = [Double](repeating: 0, count: n)
    for i in 0..<n where free[i] { q[i] = g[i] }
    var alphas = [Double](repeating: 0, count: history.count)
    var rhos = [Double](repeating: 0, count: history.count)
    var gamma: Double?
    for k in stride(from: history.count - 1, through: 0, by: -1) {
      let pair = history[k]
      var sy = 0.0
      var yHy = 0.0
      for i in 0..<n where free[i] {
        sy += pair.s[i] * pair.y[i]
        yHy += pair.y[i] * pair.y[i] / h[i]
      }
      guard sy > 0 else { continue }
      if gamma == nil { gamma = sy / yHy }
      rhos[k] = 1 / sy
      var sq = 0.0
      for i in 0..<n where free[i] { sq += pair.s[i] * q[i] }
      alphas[k] = rhos[k] * sq
      for i in 0..<n where free[i] { q[i] -= alphas[k] * pair.y[i] }
    }
    // Without a pair, the metric is diag(1/h) scaled so that the intercept's entry is 1.
    let scale = gamma ?? h[n - 1]
    for i in 0..<n where free[i] { q[i] *= scale / h[i] }
    for k in 0..<history.count where rhos[k] > 0 {
      let pair = history[k]
      var yr = 0.0
      for i in 0..<n where free[i] { yr += pair.y[i] * q[i] }
      let b = rhos[k] * yr
      for i in 0..<n where free[i] { q[i] += pair.s[i] * (alphas[k] - b) }
    }
    return q.map { -$0 }
  }
}
