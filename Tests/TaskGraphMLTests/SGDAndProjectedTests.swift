import TaskGraphLinalg
import TaskGraphML
import XCTest

final class SGDAndProjectedTests: XCTestCase {
  /// y = x·w* + 0.5 + small noise, features uniform in [−1, 1].
  func easyProblem(rows: Int = 2000) -> Dataset {
    var rng = SplitMix64(seed: 7)
    func uniform() -> Double { Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1 }
    let truth = [1.5, -2.0, 0.5, 3.0]
    var features: [[Double]] = []
    var labels: [Double] = []
    for _ in 0..<rows {
      let x = (0..<truth.count).map { _ in uniform() }
      features.append(x)
      labels.append(zip(x, truth).reduce(0.5) { $0 + $1.0 * $1.1 } + 0.01 * uniform())
    }
    return Dataset(features: features, labels: labels)
  }

  /// SGD reaches the least-squares optimum to 2e-2 relative, with each schedule and each
  /// way of drawing batches, in Double and Float storage; an iteration is a pass over the
  /// rows (2000 rows in batches of 16: 125 updates).
  func testSGDReachesOptimum() throws {
    let data = easyProblem()
    let reference = referenceRidge(data, l2: 0)
    let expected = reference.w + [reference.b]
    let variants: [(LearningRateSchedule, BatchSampling)] = [
      (.constant(eta0: 0.1), .randomIndices),
      (.inverseScaling(eta0: 0.3, power: 0.25), .sequentialRanges),
      (.stepDecay(eta0: 0.3, factor: 0.5, every: 1000), .randomIndices),
    ]
    for (schedule, sampling) in variants {
      let config = TrainingConfiguration(
        kind: .linear, solver: .sgd, stop: StopCriteria([.maxIterations(40)]),
        sgd: SGDConfiguration(
          batchSize: 16, schedule: schedule, sampling: sampling, seed: 3, patience: .max))
      for useFloat in [false, true] {
        let result =
          useFloat
          ? try Trainer.fit(x: data.matrix(Float.self), y: data.labels, configuration: config)
          : try Trainer.fit(x: data.matrix(Double.self), y: data.labels, configuration: config)
        XCTAssertEqual(result.summary.stopReason, .maxIterations)
        XCTAssertEqual(result.summary.iterations, 40)
        XCTAssertEqual(result.summary.evaluations, 1 + 40 * (125 + 1))
        let got = result.model.coefficients + [result.model.intercept]
        XCTAssertLessThan(
          relativeError(got, expected), 2e-2, "\(schedule) \(sampling) float=\(useFloat)")
      }
    }
  }

  /// The default schedule (halving after a pass that does not lower the objective) never
  /// lets the objective over all rows rise from pass to pass, stops by itself once passes
  /// stop improving (patience), and ends near the optimum: the objective within 1e-3
  /// relative of the closed form's.
  func testHalvingOnStallDescendsAndStops() throws {
    let data = easyProblem()
    let reference = referenceRidge(data, l2: 0)
    let x: Matrix<Double> = data.matrix()
    let optimum =
      LocalGradientSource(x: x, labels: data.labels, loss: .squared)
      .gradientSums(
        EvaluationRequest(parameters: Parameters(weights: reference.w, intercept: reference.b))
      )
      .loss / Double(data.labels.count)
    let config = TrainingConfiguration(
      kind: .linear, solver: .sgd, stop: StopCriteria([.maxIterations(1000)]),
      sgd: SGDConfiguration(batchSize: 32, schedule: .halvingOnStall(eta0: 0.5), seed: 5))
    let result = try Trainer.fit(x: x, y: data.labels, configuration: config)
    XCTAssertEqual(result.summary.stopReason, .objectiveTolerance)
    XCTAssertLessThan(result.summary.iterations, 1000)
    let objectives = result.summary.objectives
    for k in 1..<objectives.count { XCTAssertLessThanOrEqual(objectives[k], objectives[k - 1]) }
    XCTAssertEqual(objectives.last!, optimum, accuracy: 1e-3 * optimum)
  }

  /// The learning-rate schedules give their documented values.
  func testSchedules() {
    XCTAssertEqual(LearningRateSchedule.constant(eta0: 0.2).rate(at: 99), 0.2)
    XCTAssertEqual(
      LearningRateSchedule.inverseScaling(eta0: 1, power: 0.5).rate(at: 3), 0.5, accuracy: 1e-15)
    let step = LearningRateSchedule.stepDecay(eta0: 1, factor: 0.1, every: 10)
    XCTAssertEqual(step.rate(at: 9), 1)
    XCTAssertEqual(step.rate(at: 10), 0.1, accuracy: 1e-15)
    XCTAssertEqual(step.rate(at: 25), 0.01, accuracy: 1e-15)
  }

  /// Non-negative least squares on standardised diabetes by projected gradient: box KKT to
  /// 1e-6 (wⱼ > 0 ⇒ |gⱼ| ≤ tol; wⱼ = 0 ⇒ gⱼ ≥ −tol; |g_b| ≤ tol), Double; 1e-3 Float.
  func testProjectedGradientNonNegativeKKT() throws {
    let data = try loadCSV("diabetes.csv").standardised()
    for (useFloat, tolerance, gradient) in [(false, 1e-6, 1e-9), (true, 1e-3, 1e-5)] {
      let config = TrainingConfiguration(
        kind: .linear, solver: .projected,
        stop: StopCriteria([.maxIterations(100_000), .gradientNorm(below: gradient)]),
        bounds: .nonNegative(count: data.cols))
      let result =
        useFloat
        ? try Trainer.fit(x: data.matrix(Float.self), y: data.labels, configuration: config)
        : try Trainer.fit(x: data.matrix(Double.self), y: data.labels, configuration: config)
      let model = result.model
      let (g, gb) = referenceGradient(
        data, w: model.coefficients, b: model.intercept, logistic: false)
      var atBound = 0
      for (j, w) in model.coefficients.enumerated() {
        XCTAssertGreaterThanOrEqual(w, 0)
        if w > 0 {
          XCTAssertLessThanOrEqual(abs(g[j]), tolerance, "float=\(useFloat) w[\(j)] = \(w)")
        } else {
          atBound += 1
          XCTAssertGreaterThanOrEqual(g[j], -tolerance, "float=\(useFloat) w[\(j)] = 0")
        }
      }
      XCTAssertLessThanOrEqual(abs(gb), tolerance)
      XCTAssertGreaterThan(atBound, 0, "the bound must be active for the test to mean anything")
    }
  }

  /// A two-sided box: coefficients stay in [−1, 1] and satisfy the box KKT conditions.
  func testProjectedGradientTwoSidedBox() throws {
    let data = try loadCSV("diabetes.csv").standardised()
    let d = data.cols
    let bounds = Bounds(
      lower: [Double](repeating: -1, count: d), upper: [Double](repeating: 1, count: d))
    let config = TrainingConfiguration(
      kind: .linear, solver: .auto,
      stop: StopCriteria([.maxIterations(100_000), .gradientNorm(below: 1e-9)]), bounds: bounds)
    let result = try Trainer.fit(x: data.matrix(Double.self), y: data.labels, configuration: config)
    XCTAssertEqual(result.summary.solver, .projected)
    let (g, _) = referenceGradient(
      data, w: result.model.coefficients, b: result.model.intercept, logistic: false)
    for (j, w) in result.model.coefficients.enumerated() {
      XCTAssertTrue(w >= -1 && w <= 1)
      if w == -1 {
        XCTAssertGreaterThanOrEqual(g[j], -1e-6)
      } else if w == 1 {
        XCTAssertLessThanOrEqual(g[j], 1e-6)
      } else {
        XCTAssertLessThanOrEqual(abs(g[j]), 1e-6)
      }
    }
  }
}
