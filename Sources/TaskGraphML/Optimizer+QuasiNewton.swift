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
    let penalty = orthantWise ? configuration.regularization : Regularization(l2: 0)
    let l1 = penalty.l1
    let d = penalisedCount
    let pg = pseudoGradient(theta, cur.gradient, penalty)
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
      direction = twoLoop(pg)
      slope = dot(pg, direction)
    }
    var orthant = [Double](repeating: 0, count: d)
    if l1 > 0 {
      for j in 0..<d {
        orthant[j] =
          theta[j] != 0 ? (theta[j] > 0 ? 1 : -1) : (pg[j] < 0 ? 1 : (pg[j] > 0 ? -1 : 0))
      }
    }
    var t = history.isEmpty ? min(1, 1 / norm(direction)) : 1
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
        recordCurvature(to: candidate, gradient: point.gradient, from: cur, memory: memory)
        theta = candidate
        current = point
        stepSize = t
        iteration += 1
        return outcome(
          previous: cur.objective, objective: point.objective,
          gradientNorm: norm(pseudoGradient(candidate, point.gradient, penalty)),
          evaluationsBefore: before, failed: false)
      }
      t *= configuration.lineSearch.shrink
    }
    iteration += 1
    return outcome(
      previous: cur.objective, objective: cur.objective, gradientNorm: pgNorm,
      evaluationsBefore: before, failed: true)
  }

  /// Keeps the curvature pair of the step from `theta` (where the smooth gradient is
  /// `from.gradient`) to `candidate` (where it is `gradient`), unless `sᵀy` is not clearly
  /// positive, and at most the `memory` newest pairs.
  mutating func recordCurvature(
    to candidate: [Double], gradient: [Double], from cur: EvaluatedPoint, memory: Int
  ) {
    var s = candidate
    var y = gradient
    for i in s.indices {
      s[i] -= theta[i]
      y[i] -= cur.gradient[i]
    }
    let sy = dot(s, y)
    if sy > 1e-12 * norm(s) * norm(y) && sy > 0 {
      history.append(CurvaturePair(s: s, y: y, rho: 1 / sy))
      if history.count > memory { history.removeFirst(history.count - memory) }
    }
  }

  /// `−H g` for the L-BFGS inverse-Hessian approximation `H` (two-loop recursion), scaled
  /// initially by `sᵀy / yᵀy` of the newest pair.
  ///
  /// Each pass over the vectors does one step's update of `q` and the next step's dot
  /// product with the updated values: 2m + 1 passes instead of 4m + 2 (at a million
  /// features and m = 10, 20 vectors of 8 MB each, the recursion is memory-bound). The
  /// arithmetic is the textbook recursion's, operation for operation and in the same order
  /// (every dot product summed from the first element to the last), so the result is the
  /// same to the bit.
  func twoLoop(_ g: [Double]) -> [Double] {
    let m = history.count
    let n = g.count
    if let h = configuration.curvature {
      return preconditionedTwoLoop(g, curvature: h)
    }
    guard m > 0 else { return g.map { -$0 } }
    var alphas = [Double](repeating: 0, count: m)
    let newest = history[m - 1]
    var gamma = 0.0
    var q = [Double](unsafeUninitializedCapacity: n) { out, count in
      // q = g, with the newest pair's sᵀq and the scaling's yᵀy.
      var sq = 0.0
      var yy = 0.0
      Self.reading(g, newest.s, newest.y) { gp, sp, yp in
        for i in 0..<n {
          let v = gp[i]
          out[i] = v
          sq += sp[i] * v
          yy += yp[i] * yp[i]
        }
      }
      alphas[m - 1] = newest.rho * sq
      gamma = 1 / (newest.rho * yy)
      count = n
    }
    q.withUnsafeMutableBufferPointer { qp in
      // First loop, newest pair to oldest: q −= αₖ yₖ, then αₖ₋₁ = ρₖ₋₁ sₖ₋₁ᵀq.
      for k in stride(from: m - 1, to: 0, by: -1) {
        let a = alphas[k]
        let older = history[k - 1]
        var dot = 0.0
        Self.reading(history[k].y, older.s) { yp, sp in
          for i in 0..<n {
            qp[i] -= a * yp[i]
            dot += sp[i] * qp[i]
          }
        }
        alphas[k - 1] = older.rho * dot
      }
      // The oldest pair's update, the scaling, and the second loop's first βₖ = ρₖ yₖᵀq.
      let oldest = history[0]
      let a0 = alphas[0]
      var dot = 0.0
      Self.reading(oldest.y) { yp, _ in
        for i in 0..<n {
          qp[i] -= a0 * yp[i]
          qp[i] *= gamma
          dot += yp[i] * qp[i]
        }
      }
      var beta = oldest.rho * dot
      // Second loop, oldest pair to newest: q += (αₖ − βₖ) sₖ, then βₖ₊₁ = ρₖ₊₁ yₖ₊₁ᵀq.
      for k in 0..<(m - 1) {
        let c = alphas[k] - beta
        let newer = history[k + 1]
        var dot = 0.0
        Self.reading(history[k].s, newer.y) { sp, yp in
          for i in 0..<n {
            qp[i] += c * sp[i]
            dot += yp[i] * qp[i]
          }
        }
        beta = newer.rho * dot
      }
      // The newest pair's update, and the sign.
      let c = alphas[m - 1] - beta
      Self.reading(newest.s) { sp, _ in
        for i in 0..<n { qp[i] = -(qp[i] + c * sp[i]) }
      }
    }
    return q
  }

  /// `−H g` with the initial inverse Hessian `γ·diag(1/h)` (see
  /// `OptimizerConfiguration.curvature`): the textbook two-loop recursion.
  func preconditionedTwoLoop(_ g: [Double], curvature h: [Double]) -> [Double] {
    let m = history.count
    var q = g
    guard m > 0 else { return q.indices.map { -q[$0] / h[$0] } }
    var alphas = [Double](repeating: 0, count: m)
    for k in stride(from: m - 1, through: 0, by: -1) {
      let pair = history[k]
      let a = pair.rho * dot(pair.s, q)
      alphas[k] = a
      for i in q.indices { q[i] -= a * pair.y[i] }
    }
    let newest = history[m - 1]
    var yPy = 0.0
    for i in newest.y.indices { yPy += newest.y[i] * newest.y[i] / h[i] }
    let gamma = 1 / (newest.rho * yPy)
    for i in q.indices { q[i] *= gamma / h[i] }
    for k in 0..<m {
      let pair = history[k]
      let beta = pair.rho * dot(pair.y, q)
      let c = alphas[k] - beta
      for i in q.indices { q[i] += c * pair.s[i] }
    }
    for i in q.indices { q[i] = -q[i] }
    return q
  }

  /// Calls `body` with the elements of one to three arrays (an absent one as empty).
  private static func reading(
    _ a: [Double], _ b: [Double] = [], _ c: [Double] = [],
    _ body: (UnsafeBufferPointer<Double>, UnsafeBufferPointer<Double>, UnsafeBufferPointer<Double>)
      -> Void
  ) {
    a.withUnsafeBufferPointer { ap in
      b.withUnsafeBufferPointer { bp in
        c.withUnsafeBufferPointer { cp in body(ap, bp, cp) }
      }
    }
  }

  private static func reading(
    _ a: [Double], _ b: [Double] = [],
    _ body: (UnsafeBufferPointer<Double>, UnsafeBufferPointer<Double>) -> Void
  ) {
    a.withUnsafeBufferPointer { ap in
      b.withUnsafeBufferPointer { bp in body(ap, bp) }
    }
  }
}
