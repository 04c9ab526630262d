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
    let penalty = configuration.regularization
    let l1 = penalty.l1
    let d = penalisedCount
    let g = cur.gradient
    let gNorm = norm(g)
    var t = stepSize
    for _ in 0..<configuration.lineSearch.maxTrials {
      var candidate = theta
      for i in candidate.indices { candidate[i] -= t * g[i] }
      if l1 > 0 {
        for j in 0..<d { candidate[j] = softThreshold(candidate[j], t * penalty.l1(at: j)) }
      }
      let point = try evaluatePoint(candidate, batch: .all, evaluate)
      let accepted: Bool
      if l1 > 0 {
        var lin = 0.0
        var sq = 0.0
        var l1Term = 0.0
        for i in candidate.indices {
          let delta = candidate[i] - theta[i]
          lin += g[i] * delta
          sq += delta * delta
        }
        for j in 0..<d {
          l1Term += (abs(candidate[j]) - abs(theta[j])) * penalty.l1(at: j)
        }
        let noise = configuration.lineSearch.relativeSlack * abs(cur.objective)
        accepted =
          point.smooth.isFinite
          && (point.smooth <= cur.smooth + lin + sq / (2 * t)
            || (abs(lin + l1Term) <= noise && point.objective <= cur.objective + noise))
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
          gradientNorm: norm(pseudoGradient(candidate, point.gradient, penalty)),
          evaluationsBefore: before, failed: false)
      }
      t *= configuration.lineSearch.shrink
    }
    iteration += 1
    return outcome(
      previous: cur.objective, objective: cur.objective,
      gradientNorm: norm(pseudoGradient(theta, g, penalty)), evaluationsBefore: before,
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
  ///
  /// With `sgd.varianceReduced` each batch gradient is corrected as SVRG does (see
  /// `SGDConfiguration.varianceReduced`); with a curvature estimate
  /// (`OptimizerConfiguration.curvature`) each coordinate's rate is scaled by the data's
  /// curvature over the coordinate's.
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
    let penalty = configuration.regularization
    let l1 = penalty.l1
    let d = penalisedCount
    var next = theta
    // Per coordinate: η, or with a curvature estimate η scaled by the data's curvature over
    // the coordinate's (a diagonal preconditioner; the intercept's rate is η).
    let rates =
      configuration.curvature.map { h in h.map { eta * h[h.count - 1] / $0 } }
      ?? [Double](repeating: eta, count: theta.count)
    let reduced = sgd.varianceReduced
    for batch in passBatches(sgd) {
      var point = try evaluatePoint(next, batch: batch, evaluate)
      if reduced {
        let anchor = try evaluatePoint(theta, batch: batch, evaluate)
        for i in point.gradient.indices {
          point.gradient[i] += start.gradient[i] - anchor.gradient[i]
        }
      }
      for i in next.indices { next[i] -= rates[i] * point.gradient[i] }
      if l1 > 0 {
        for j in 0..<d { next[j] = softThreshold(next[j], rates[j] * penalty.l1(at: j)) }
      }
    }
    let end = try evaluatePoint(next, batch: .all, evaluate)
    let lowered = end.objective.isFinite && end.objective < start.objective
    if case .halvingOnStall = sgd.schedule, !lowered {
      stepSize = eta / 2
    } else {
      theta = next
      current = end
      stepSize = isHalving(sgd.schedule) && reduced ? eta * 1.25 : eta
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
    if reduced {
      // Variance-reduced passes converge linearly, so the decrease still to come can be
      // estimated as for deterministic methods: passes that improve little each but
      // steadily are slow, not done.
      if lowered {
        passObjectives.append(objective)
        let keep = 2 * OptimizationProgress.window + 1
        if passObjectives.count > keep { passObjectives.removeFirst(passObjectives.count - keep) }
      }
      if out.stalled, let remaining = OptimizationProgress.remainingDecrease(passObjectives),
        remaining > sgd.tolerance * max(abs(objective), 1)
      {
        out.stalled = false
      }
    }
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
