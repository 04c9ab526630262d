import TaskGraphLinalg
import TaskGraphML
import XCTest

/// A source that, like a parameter server, sums the contributions of several shards.
struct ShardedSource: GradientSource {
  var shards: [LocalGradientSource<Double>]
  var rowCount: Int { shards.reduce(0) { $0 + $1.rowCount } }
  var featureCount: Int { shards[0].featureCount }

  func gradientSums(_ request: EvaluationRequest) throws -> GradientSums {
    precondition(request.batch == .all, "the sharded test source serves full passes only")
    var total = GradientSums(cols: featureCount)
    for shard in shards { total.add(shard.gradientSums(request)) }
    return total
  }
}

final class GradientSourceTests: XCTestCase {
  /// The optimizer gives the same model from summed shards as from one matrix (1e-9
  /// relative: only the order of the sums differs), and the same as the closed form.
  func testShardedSourceMatchesLocal() throws {
    let data = try loadCSV("breast_cancer.csv").standardised()
    let x: Matrix<Double> = data.matrix()
    let cuts = [0, 100, 350, data.rows]
    let shards = (0..<3).map { k in
      LocalGradientSource(
        x: x.rows(cuts[k]..<cuts[k + 1]), labels: Array(data.labels[cuts[k]..<cuts[k + 1]]),
        loss: .logistic)
    }
    let config = TrainingConfiguration(
      kind: .logistic, regularization: Regularization(l2: 0.01),
      stop: StopCriteria([.maxIterations(5000), .gradientNorm(below: 1e-11)]))
    let local = try Trainer.fit(x: x, y: data.labels, configuration: config)
    let sharded = try Trainer.fit(source: ShardedSource(shards: shards), configuration: config)
    XCTAssertEqual(sharded.summary.solver, .lbfgs)
    XCTAssertLessThan(
      relativeError(
        sharded.model.coefficients + [sharded.model.intercept],
        local.model.coefficients + [local.model.intercept]), 1e-9)
  }

  /// `LocalGradientSource` batches: a row range and the same rows as indices agree, and
  /// the two halves add up to the full pass (1e-10 relative).
  func testBatchesAddUp() throws {
    let data = try loadCSV("diabetes.csv")
    let source = LocalGradientSource(
      x: data.matrix(Double.self), labels: data.labels, loss: .squared, threads: 2)
    let p = Parameters(weights: (0..<data.cols).map { Double($0) * 0.1 }, intercept: 3)
    let full = source.gradientSums(EvaluationRequest(parameters: p))
    let a = source.gradientSums(EvaluationRequest(parameters: p, batch: .rows(0..<200)))
    let b = source.gradientSums(
      EvaluationRequest(parameters: p, batch: .indices(Array(200..<data.rows))))
    var sum = a
    sum.add(b)
    XCTAssertEqual(sum.rows, full.rows)
    XCTAssertEqual(sum.loss, full.loss, accuracy: 1e-10 * full.loss)
    XCTAssertEqual(sum.intercept, full.intercept, accuracy: 1e-10 * abs(full.intercept))
    XCTAssertLessThan(relativeError(sum.gradient, full.gradient), 1e-10)
  }
}
