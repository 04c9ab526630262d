import Foundation
import TaskGraphLinalg
import TaskGraphML
import XCTest

final class ConfigurationTests: XCTestCase {
  func testScikitLearnMapping() {
    XCTAssertEqual(Regularization.ridge(alpha: 4, rows: 200).l2, 0.02)
    XCTAssertEqual(Regularization.lasso(alpha: 0.3).l1, 0.3)
    let enet = Regularization.elasticNet(alpha: 2, l1Ratio: 0.25)
    XCTAssertEqual(enet.l1, 0.5)
    XCTAssertEqual(enet.l2, 1.5)
    XCTAssertEqual(Regularization.logistic(c: 0.5, rows: 100).l2, 0.02)
    XCTAssertEqual(Regularization(l1: 2, l2: 3).penalty([1, -2]), 2 * 3 + 1.5 * 5)
  }

  func testAutoSolverChoice() {
    XCTAssertEqual(TrainingConfiguration(kind: .linear).resolvedSolver, .exact)
    XCTAssertEqual(
      TrainingConfiguration(kind: .ridge, regularization: Regularization(l2: 1)).resolvedSolver,
      .exact)
    XCTAssertEqual(TrainingConfiguration(kind: .logistic).resolvedSolver, .lbfgs)
    XCTAssertEqual(
      TrainingConfiguration(kind: .lasso, regularization: Regularization(l1: 1)).resolvedSolver,
      .owlqn)
    XCTAssertEqual(
      TrainingConfiguration(kind: .logistic, regularization: Regularization(l1: 1))
        .resolvedSolver, .owlqn)
    XCTAssertEqual(TrainingConfiguration(kind: .linear, solver: .sgd).resolvedSolver, .sgd)
  }

  func testStopCriteria() {
    func progress(_ it: Int, _ f: Double, _ prev: Double?, _ g: Double, _ t: Double)
      -> OptimizationProgress
    {
      OptimizationProgress(
        iteration: it, objective: f, previousObjective: prev, gradientNorm: g, elapsedSeconds: t)
    }
    let criteria = StopCriteria([
      .maxIterations(10), .gradientNorm(below: 1e-6), .relativeObjectiveChange(below: 1e-8),
      .timeLimit(seconds: 5),
    ])
    XCTAssertNil(criteria.reason(at: progress(1, 2, nil, 1, 0)))
    XCTAssertNil(criteria.reason(at: progress(1, 2, 3, 1, 0)))
    XCTAssertEqual(criteria.reason(at: progress(10, 2, 3, 1, 0)), .maxIterations)
    XCTAssertEqual(criteria.reason(at: progress(1, 2, 3, 1e-7, 0)), .gradientTolerance)
    XCTAssertEqual(criteria.reason(at: progress(1, 2, 2 + 1e-9, 1, 0)), .objectiveTolerance)
    XCTAssertEqual(criteria.reason(at: progress(1, 2, 3, 1, 5)), .timeLimit)
  }

  /// A time limit on an injected clock stops the run with `.timeLimit`.
  func testTimeLimitWithInjectedClock() throws {
    let data = try loadCSV("diabetes.csv").standardised()
    let clock = TickingClock(tick: 1)
    let config = TrainingConfiguration(
      kind: .linear, solver: .gradientDescent,
      stop: StopCriteria([.maxIterations(1_000_000), .timeLimit(seconds: 10)]))
    let result = try Trainer.fit(
      x: data.matrix(Double.self), y: data.labels, configuration: config, clock: clock)
    XCTAssertEqual(result.summary.stopReason, .timeLimit)
    XCTAssertGreaterThanOrEqual(result.summary.seconds, 10)
    XCTAssertLessThan(result.summary.iterations, 20)
    XCTAssertEqual(result.summary.objectives.count, result.summary.iterations + 1)
  }

  func testModelFileRoundTripAndPredict() throws {
    let model = LinearModel(kind: .logistic, coefficients: [1, -2], intercept: 0.5)
    let x = Matrix<Double>([[1, 1], [0, 0], [2, 0]])
    XCTAssertEqual(model.margins(x), [-0.5, 0.5, 2.5])
    let p = model.predict(x)
    XCTAssertEqual(p[1], 1 / (1 + exp(-0.5)), accuracy: 1e-15)
    XCTAssertEqual(model.predictLabels(x), [0, 1, 1])
    XCTAssertEqual(model.margins(x.converted(to: Float.self)), [-0.5, 0.5, 2.5])
    let url = FileManager.default.temporaryDirectory
      .appendingPathComponent("model-\(UUID().uuidString).json")
    defer { try? FileManager.default.removeItem(at: url) }
    try model.write(to: url)
    XCTAssertEqual(try LinearModel(contentsOf: url), model)
    try Data("not json".utf8).write(to: url)
    XCTAssertThrowsError(try LinearModel(contentsOf: url)) { error in
      XCTAssertEqual((error as? MLError)?.code, .invalidModelFile)
    }
  }
}
