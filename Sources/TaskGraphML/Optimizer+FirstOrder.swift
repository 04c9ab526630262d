import TaskGraphLinalg

extension Optimizer {
  /// One gradient descent iteration with backtracking.
  ///
  /// Without L1: Armijo, `F(θ − t g) ≤ F(θ) − c₁ t ‖g‖²`. With L1 (proximal gradient):
  /// `θ⁺ = soft(θ − t g, t·l1)`, accepted when `f(θ⁺) ≤ f(θ) + gᵀ(θ⁺ − θ) + ‖θ⁺ − θ‖²/(2t)`
  /// for the smooth part `f`. The trial step starts from the last accepted one and only
  /// shrinks, so steps stay below `2/L` and the iteration cannot oscillate near the optimum.
  mutating func gradientDescentStep(_ evaluate: (EvaluationRequest) throws -> GradientSums)
    throws -> StepOutcome
  {
    let before = evaluations
    let cur = try ensureCurrent(evaluate)
    let l1 = configuration.regularization.l1
    let d = penalisedCount
    let g = cur.gradient
    let gNorm = norm(g)
    var t = stepSize
    for _ in 0..<configuration.lineSearch.maxTrials {
      var candidate = theta
      for i in candidate.indices { candidate[i] -= t * g[i] }
      if l1 > 0 {
        for j in 0..<d { candidate[j] = softThreshold(candidate[j], t * l1) }
      }
      let point = try evaluatePoint(candidate, batch: .all, evaluate)
      let accepted: Bool
      if l1 > 0 {
        var lin = 0.0
        var sq = 0.0
        var l1Change = 0.0
        for i in candidate.indices {
          let delta = candidate[i] - theta[i]
          lin += g[i] * delta
          sq += delta * delta
        }
        for j in 0..<d { l1Change += abs(candidate[j]) - abs(theta[j]) }
        let noise = configuration.lineSearch.relativeSlack * abs(cur.objective)
        accepted =
          point.smooth.isFinite
          && (point.smooth <= cur.smooth + lin + sq / (2 * t)
            || (abs(lin + l1 * l1Change) <= noise && point.objective <= cur.objective + noise))
      } else {
        accepted = accepts(new: point.objective, old: cur.objective, decrease: -t * gNorm * gNorm)
      }
      if accepted {
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
      previous: cur.objective, objective: cur.objective,
      gradientNorm: norm(pseudoGradient(theta, g, l1: l1)), evaluationsBefore: before,
      failed: true)
  }

  /// One mini-batch SGD update: `θ ← θ − η(t)·ĝ` with `ĝ` the batch gradient (mean loss
  /// gradient plus `l2·w`), then soft-thresholding by `η(t)·l1` when `l1 > 0`.
  mutating func sgdStep(
    _ sgd: SGDConfiguration, _ evaluate: (EvaluationRequest) throws -> GradientSums
  ) throws -> StepOutcome {
    let before = evaluations
    let batch = nextBatch(sgd)
    let point = try evaluatePoint(theta, batch: batch, evaluate)
    let eta = sgd.schedule.rate(at: iteration)
    let l1 = configuration.regularization.l1
    let d = penalisedCount
    var next = theta
    for i in next.indices { next[i] -= eta * point.gradient[i] }
    if l1 > 0 {
      for j in 0..<d { next[j] = softThreshold(next[j], eta * l1) }
    }
    let gradientNorm = norm(pseudoGradient(theta, point.gradient, l1: l1))
    theta = next
    // The full-data evaluation is stale after an update.
    current = nil
    stepSize = eta
    iteration += 1
    return outcome(
      previous: point.objective, objective: point.objective, gradientNorm: gradientNorm,
      evaluationsBefore: before, failed: false)
  }

  mutating func nextBatch(_ sgd: SGDConfiguration) -> Batch {
    let size = min(sgd.batchSize, rowCount)
    switch sgd.sampling {
    case .sequentialRanges:
      let start = batchCursor
      let end = min(start + size, rowCount)
      batchCursor = end == rowCount ? 0 : end
      return .rows(start..<end)
    case .randomIndices:
      var indices = [Int](repeating: 0, count: size)
      for k in 0..<size { indices[k] = Int(rng.next() % UInt64(rowCount)) }
      // Sorted for memory locality; the sum does not depend on the order.
      indices.sort()
      return .indices(indices)
    }
  }
}

@inline(__always)
func softThreshold(_ v: Double, _ k: Double) -> Double {
  if v > k { return v - k }
  if v < -k { return v + k }
  return 0
}
