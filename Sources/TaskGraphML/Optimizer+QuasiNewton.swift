import TaskGraphLinalg

extension Optimizer {
  /// One L-BFGS iteration, or with `orthantWise` one OWL-QN iteration (Andrew & Gao 2007):
  /// the two-loop recursion is applied to the pseudo-gradient, the direction is zeroed where
  /// it disagrees in sign with the steepest descent direction, and every trial point is
  /// projected onto the orthant of the current point (coordinates that would cross zero
  /// stop at zero). Curvature pairs use the gradient of the smooth part only.
  mutating func quasiNewtonStep(
    memory: Int, orthantWise: Bool, _ evaluate: (EvaluationRequest) throws -> GradientSums
  ) throws -> StepOutcome {
    let before = evaluations
    let cur = try ensureCurrent(evaluate)
    let l1 = orthantWise ? configuration.regularization.l1 : 0
    let d = penalisedCount
    let pg = pseudoGradient(theta, cur.gradient, l1: l1)
    let pgNorm = norm(pg)
    if pgNorm == 0 {
      iteration += 1
      return outcome(
        previous: cur.objective, objective: cur.objective, gradientNorm: 0,
        evaluationsBefore: before, failed: false)
    }
    var direction = twoLoop(pg)
    if l1 > 0 {
      for j in 0..<d where direction[j] * pg[j] >= 0 { direction[j] = 0 }
    }
    var slope = dot(pg, direction)
    if !(slope < 0) {
      // Not a descent direction (bad curvature information): restart from steepest descent.
      history.removeAll()
      direction = pg.map { -$0 }
      slope = -pgNorm * pgNorm
    }
    var orthant = [Double](repeating: 0, count: d)
    if l1 > 0 {
      for j in 0..<d {
        orthant[j] =
          theta[j] != 0 ? (theta[j] > 0 ? 1 : -1) : (pg[j] < 0 ? 1 : (pg[j] > 0 ? -1 : 0))
      }
    }
    var t = history.isEmpty ? min(1, 1 / pgNorm) : 1
    for _ in 0..<configuration.lineSearch.maxTrials {
      var candidate = theta
      for i in candidate.indices { candidate[i] += t * direction[i] }
      if l1 > 0 {
        for j in 0..<d where candidate[j] * orthant[j] <= 0 { candidate[j] = 0 }
      }
      let point = try evaluatePoint(candidate, batch: .all, evaluate)
      var decrease = t * slope
      if l1 > 0 {
        decrease = 0
        for i in candidate.indices { decrease += pg[i] * (candidate[i] - theta[i]) }
      }
      if accepts(new: point.objective, old: cur.objective, decrease: decrease) {
        var s = candidate
        var y = point.gradient
        for i in s.indices {
          s[i] -= theta[i]
          y[i] -= cur.gradient[i]
        }
        let sy = dot(s, y)
        if sy > 1e-12 * norm(s) * norm(y) && sy > 0 {
          history.append(CurvaturePair(s: s, y: y, rho: 1 / sy))
          if history.count > memory { history.removeFirst(history.count - memory) }
        }
        theta = candidate
        current = point
        stepSize = t
        iteration += 1
        return outcome(
          previous: cur.objective, objective: point.objective,
          gradientNorm: norm(pseudoGradient(candidate, point.gradient, l1: l1)),
          evaluationsBefore: before, failed: false)
      }
      t *= configuration.lineSearch.shrink
    }
    iteration += 1
    return outcome(
      previous: cur.objective, objective: cur.objective, gradientNorm: pgNorm,
      evaluationsBefore: before, failed: true)
  }

  /// `−H g` for the L-BFGS inverse-Hessian approximation `H` (two-loop recursion), scaled
  /// initially by `sᵀy / yᵀy` of the newest pair.
  func twoLoop(_ g: [Double]) -> [Double] {
    var q = g
    var alphas = [Double](repeating: 0, count: history.count)
    for k in stride(from: history.count - 1, through: 0, by: -1) {
      let pair = history[k]
      let a = pair.rho * dot(pair.s, q)
      alphas[k] = a
      for i in q.indices { q[i] -= a * pair.y[i] }
    }
    if let last = history.last {
      let gamma = 1 / (last.rho * dot(last.y, last.y))
      for i in q.indices { q[i] *= gamma }
    }
    for k in 0..<history.count {
      let pair = history[k]
      let b = pair.rho * dot(pair.y, q)
      for i in q.indices { q[i] += (alphas[k] - b) * pair.s[i] }
    }
    for i in q.indices { q[i] = -q[i] }
    return q
  }
}
