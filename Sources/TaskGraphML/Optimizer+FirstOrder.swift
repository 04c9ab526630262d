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

  /// One pass (epoch) of mini-batch SGD over every row: the rows in an order shuffled by
  /// the seeded RNG (or in order, for `.sequentialRanges`), `batchSize` at a time, each
  /// batch an update `θ ← θ − η·ĝ` (`ĝ` the batch's mean loss gradient plus `l2·w`, then
  /// soft-thresholding by `η·l1`). The pass ends with the objective over all rows, which is
  /// what the outcome reports. Under `.halvingOnStall` a pass that does not lower it is
  /// undone and the rate halved. A pass that does not improve the best objective by the
  /// tolerance counts towards `patience`; the outcome is `stalled` once that many passes in
  /// a row did not.
  mutating func sgdStep(
    _ sgd: SGDConfiguration, _ evaluate: (EvaluationRequest) throws -> GradientSums
  ) throws -> StepOutcome {
    let before = evaluations
    let start = try ensureCurrent(evaluate)
    let eta: Double
    if case .halvingOnStall = sgd.schedule {
      eta = stepSize
    } else {
      eta = sgd.schedule.rate(at: iteration)
    }
    let l1 = configuration.regularization.l1
    let d = penalisedCount
    var next = theta
    for batch in passBatches(sgd) {
      let point = try evaluatePoint(next, batch: batch, evaluate)
      for i in next.indices { next[i] -= eta * point.gradient[i] }
      if l1 > 0 {
        for j in 0..<d { next[j] = softThreshold(next[j], eta * l1) }
      }
    }
    let end = try evaluatePoint(next, batch: .all, evaluate)
    let lowered = end.objective.isFinite && end.objective < start.objective
    if case .halvingOnStall = sgd.schedule, !lowered {
      stepSize = eta / 2
    } else {
      theta = next
      current = end
      stepSize = eta
    }
    let objective = current!.objective
    let best = bestObjective ?? start.objective
    if objective < best - sgd.tolerance * max(abs(best), 1) {
      passesWithoutImprovement = 0
    } else if lowered || !isHalving(sgd.schedule) {
      // An undone pass (rate too large) says nothing of convergence: it only halves the
      // rate. Passes that moved and still did not improve count.
      passesWithoutImprovement += 1
    }
    bestObjective = min(best, objective)
    iteration += 1
    var out = outcome(
      previous: start.objective, objective: objective,
      gradientNorm: norm(stationarity(theta, current!.gradient)), evaluationsBefore: before,
      failed: false)
    out.stalled = passesWithoutImprovement >= sgd.patience
    return out
  }

  func isHalving(_ schedule: LearningRateSchedule) -> Bool {
    if case .halvingOnStall = schedule { return true }
    return false
  }

  /// The mini-batches of one pass over the rows.
  mutating func passBatches(_ sgd: SGDConfiguration) -> [Batch] {
    let size = min(sgd.batchSize, rowCount)
    switch sgd.sampling {
    case .sequentialRanges:
      return stride(from: 0, to: rowCount, by: size).map {
        .rows($0..<min($0 + size, rowCount))
      }
    case .randomIndices:
      var order = Array(0..<rowCount)
      // Fisher–Yates with the optimizer's own generator, so a pass is the same on every
      // run and after a resume from a checkpoint.
      if rowCount > 1 {
        for i in stride(from: rowCount - 1, to: 0, by: -1) {
          let j = Int(rng.next() % UInt64(i + 1))
          order.swapAt(i, j)
        }
      }
      return stride(from: 0, to: rowCount, by: size).map {
        // Sorted for memory locality; the sum does not depend on the order.
        .indices(order[$0..<min($0 + size, rowCount)].sorted())
      }
    }
  }
}

@inline(__always)
func softThreshold(_ v: Double, _ k: Double) -> Double {
  if v > k { return v - k }
  if v < -k { return v + k }
  return 0
}
