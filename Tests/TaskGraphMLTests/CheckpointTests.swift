import Foundation
import TaskGraphLinalg
import TaskGraphML
import XCTest

/// Serialising an optimizer mid-run and resuming gives bit-identical parameters.
final class CheckpointTests: XCTestCase {
  func bits(_ p: Parameters) -> [UInt64] {
    p.weights.map(\.bitPattern) + [p.intercept.bitPattern]
  }

  func testResumeIsBitIdentical() throws {
    let diabetes = try loadCSV("diabetes.csv").standardised()
    let squared = LocalGradientSource(
      x: diabetes.matrix(Double.self), labels: diabetes.labels, loss: .squared, threads: 2)
    let d = diabetes.cols
    let methods: [(String, OptimizerConfiguration)] = [
      (
        "lbfgs",
        OptimizerConfiguration(method: .lbfgs(memory: 5), regularization: Regularization(l2: 0.1))
      ),
      (
        "owlqn",
        OptimizerConfiguration(
          method: .owlqn(memory: 10), regularization: Regularization(l1: 3, l2: 0.1))
      ),
      (
        "gd",
        OptimizerConfiguration(method: .gradientDescent, regularization: Regularization(l1: 1))
      ),
      (
        "sgd",
        OptimizerConfiguration(
          method: .sgd(
            SGDConfiguration(batchSize: 20, schedule: .inverseScaling(eta0: 0.1, power: 0.5))),
          regularization: Regularization(l1: 0.5))
      ),
      ("projected", OptimizerConfiguration(method: .projectedGradient(.nonNegative(count: d)))),
      (
        "sgd-ranges",
        OptimizerConfiguration(
          method: .sgd(
            SGDConfiguration(
              batchSize: 30, schedule: .stepDecay(eta0: 0.1, factor: 0.5, every: 5),
              sampling: .sequentialRanges)))
      ),
    ]
    for (name, configuration) in methods {
      var uninterrupted = Optimizer(
        configuration: configuration, initial: .zeros(features: d), rowCount: diabetes.rows)
      for _ in 0..<20 { _ = try uninterrupted.step(source: squared) }

      var first = Optimizer(
        configuration: configuration, initial: .zeros(features: d), rowCount: diabetes.rows)
      for _ in 0..<7 { _ = try first.step(source: squared) }
      let data = try JSONEncoder().encode(first)
      var resumed = try JSONDecoder().decode(Optimizer.self, from: data)
      XCTAssertEqual(resumed.iteration, 7)
      for _ in 0..<13 { _ = try resumed.step(source: squared) }

      XCTAssertEqual(resumed.iteration, 20, name)
      XCTAssertEqual(bits(resumed.parameters), bits(uninterrupted.parameters), name)
      XCTAssertEqual(resumed.evaluations, uninterrupted.evaluations, name)
      XCTAssertEqual(resumed.rng, uninterrupted.rng, name)
      // The run must have moved, or equality would be vacuous.
      XCTAssertNotEqual(bits(resumed.parameters), bits(.zeros(features: d)), name)
    }
  }

  /// Resuming through `Trainer.run` continues the iteration budget of the checkpoint.
  func testRunContinuesIterationCount() throws {
    let data = try loadCSV("diabetes.csv").standardised()
    let source = LocalGradientSource(
      x: data.matrix(Double.self), labels: data.labels, loss: .squared)
    var optimizer = Optimizer(
      configuration: OptimizerConfiguration(method: .gradientDescent),
      initial: .zeros(features: data.cols), rowCount: data.rows)
    let clock = TickingClock(tick: 0)
    let first = try Trainer.run(
      &optimizer, stop: StopCriteria([.maxIterations(5)]), clock: clock,
      evaluate: { source.gradientSums($0) })
    XCTAssertEqual(first.reason, .maxIterations)
    XCTAssertEqual(optimizer.iteration, 5)
    var resumed = try JSONDecoder().decode(Optimizer.self, from: JSONEncoder().encode(optimizer))
    let second = try Trainer.run(
      &resumed, stop: StopCriteria([.maxIterations(12)]), clock: clock,
      evaluate: { source.gradientSums($0) })
    XCTAssertEqual(resumed.iteration, 12)
    XCTAssertEqual(second.objectives.count, 8)
  }
}
