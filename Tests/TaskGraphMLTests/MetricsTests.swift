import Foundation
import TaskGraphML
import XCTest

final class MetricsTests: XCTestCase {
  func testRegressionMetricsOnHandValues() {
    let p = [1.0, 2.0, 4.0]
    let y = [1.0, 3.0, 2.0]
    XCTAssertEqual(Metrics.meanSquaredError(p, y), 5.0 / 3.0, accuracy: 1e-15)
    XCTAssertEqual(Metrics.rootMeanSquaredError(p, y), (5.0 / 3.0).squareRoot(), accuracy: 1e-15)
    XCTAssertEqual(Metrics.meanAbsoluteError(p, y), 1.0, accuracy: 1e-15)
    // ȳ = 2, SS_tot = 2, SS_res = 5.
    XCTAssertEqual(Metrics.r2(p, y), 1 - 5.0 / 2.0, accuracy: 1e-15)
    XCTAssertEqual(Metrics.r2(y, y), 1)
    XCTAssertEqual(Metrics.r2([1, 2], [3, 3]), 0)
  }

  func testClassificationMetricsOnHandValues() {
    let p = [0.9, 0.2, 0.5, 0.4]
    let y = [1.0, 0.0, 0.0, 1.0]
    // Thresholded at 0.5: 1, 0, 1, 0 → two of four right.
    XCTAssertEqual(Metrics.accuracy(probabilities: p, y), 0.5)
    let expected = -(log(0.9) + log(0.8) + log(0.5) + log(0.4)) / 4
    XCTAssertEqual(Metrics.logLoss(probabilities: p, y), expected, accuracy: 1e-15)
    // Clipping keeps certain mistakes finite.
    XCTAssertTrue(Metrics.logLoss(probabilities: [0, 1], [1, 0]).isFinite)
  }

  /// ROC AUC with many ties equals the brute-force count of (positive, negative) pairs
  /// where the positive scores higher, ties counting ½, to 1e-12.
  func testROCAUCMatchesPairwiseCountWithTies() {
    var rng = SplitMix64(seed: 11)
    for trial in 0..<20 {
      let n = 50 + trial * 7
      // Scores on a coarse grid so ties are frequent; labels correlated with scores.
      let scores = (0..<n).map { _ in Double(rng.next() % 8) / 8 }
      let labels = scores.map { s in Double(rng.next() % 1000) / 1000 < 0.3 + 0.5 * s ? 1.0 : 0.0 }
      guard labels.contains(1), labels.contains(0) else { continue }
      var wins = 0.0
      var pairs = 0.0
      for i in 0..<n where labels[i] == 1 {
        for j in 0..<n where labels[j] == 0 {
          pairs += 1
          if scores[i] > scores[j] { wins += 1 } else if scores[i] == scores[j] { wins += 0.5 }
        }
      }
      XCTAssertEqual(Metrics.rocAUC(scores: scores, labels), wins / pairs, accuracy: 1e-12)
    }
    XCTAssertEqual(Metrics.rocAUC(scores: [0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1]), 1)
    XCTAssertEqual(Metrics.rocAUC(scores: [0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]), 0.5)
  }
}
