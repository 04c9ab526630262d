import Foundation
import TaskGraphLinalg
import TaskGraphML
import XCTest

final class LogisticTests: XCTestCase {
  let l2 = 1e-2

  /// Newton's method on the L2-regularised mean log-loss, implemented in the test.
  func newton(_ data: Dataset) -> [Double] {
    let d = data.cols
    let n = Double(data.rows)
    var theta = [Double](repeating: 0, count: d + 1)
    for _ in 0..<50 {
      let w = Array(theta.prefix(d))
      let (g, gb) = referenceGradient(data, w: w, b: theta[d], logistic: true)
      var grad = g + [gb]
      for j in 0..<d { grad[j] += l2 * w[j] }
      var h = [[Double]](repeating: [Double](repeating: 0, count: d + 1), count: d + 1)
      for i in 0..<data.rows {
        let row = data.features[i] + [1]
        var z = theta[d]
        for j in 0..<d { z += row[j] * w[j] }
        let p = 1 / (1 + exp(-z))
        let s = p * (1 - p) / n
        for a in 0...d {
          for b in 0...d { h[a][b] += s * row[a] * row[b] }
        }
      }
      for j in 0..<d { h[j][j] += l2 }
      let step = gaussianSolve(h, grad)
      for k in 0...d { theta[k] -= step[k] }
      if step.map(abs).max()! < 1e-15 { break }
    }
    return theta
  }

  /// L-BFGS equals Newton's solution on standardised breast_cancer to 1e-6 (Double) and
  /// 1e-3 (Float storage).
  func testLBFGSMatchesNewton() throws {
    let data = try loadCSV("breast_cancer.csv").standardised()
    XCTAssertEqual(data.rows, 569)
    XCTAssertEqual(data.cols, 30)
    let reference = newton(data)
    for (precision, tolerance, gradient) in [("double", 1e-6, 1e-10), ("float", 1e-3, 1e-5)] {
      let config = TrainingConfiguration(
        kind: .logistic, regularization: Regularization(l2: l2),
        stop: StopCriteria([.maxIterations(10_000), .gradientNorm(below: gradient)]))
      let result =
        precision == "double"
        ? try Trainer.fit(x: data.matrix(Double.self), y: data.labels, configuration: config)
        : try Trainer.fit(x: data.matrix(Float.self), y: data.labels, configuration: config)
      XCTAssertEqual(result.summary.solver, .lbfgs)
      let got = result.model.coefficients + [result.model.intercept]
      XCTAssertLessThan(relativeError(got, reference), tolerance, precision)
    }
  }

  /// Predictions of the fitted model separate the classes well (sanity, not a reference).
  func testPredictionsAndMetrics() throws {
    let data = try loadCSV("breast_cancer.csv").standardised()
    let x: Matrix<Double> = data.matrix()
    let result = try Trainer.fit(
      x: x, y: data.labels,
      configuration: TrainingConfiguration(kind: .logistic, regularization: Regularization(l2: l2)))
    let p = result.model.predict(x)
    XCTAssertTrue(p.allSatisfy { $0 > 0 && $0 < 1 })
    XCTAssertGreaterThan(Metrics.accuracy(probabilities: p, data.labels), 0.97)
    XCTAssertGreaterThan(Metrics.rocAUC(scores: p, data.labels), 0.99)
    XCTAssertLessThan(Metrics.logLoss(probabilities: p, data.labels), 0.1)
    XCTAssertEqual(
      result.model.predictLabels(x), p.map { $0 >= 0.5 ? 1 : 0 })
  }
}
