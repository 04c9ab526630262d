import TaskGraphLinalg
import XCTest

@testable import TaskGraphML

final class TwoLoopTests: XCTestCase {
  /// The textbook two-loop recursion (Nocedal & Wright, Algorithm 7.4), written plainly:
  /// separate passes for every dot product and update.
  private func textbook(_ history: [CurvaturePair], _ g: [Double]) -> [Double] {
    func dot(_ a: [Double], _ b: [Double]) -> Double {
      var s = 0.0
      for i in a.indices { s += a[i] * b[i] }
      return s
    }
    var q = g
    var alphas = [Double](repeating: 0, count: history.count)
    for k in stride(from: history.count - 1, through: 0, by: -1) {
      alphas[k] = history[k].rho * dot(history[k].s, q)
      for i in q.indices { q[i] -= alphas[k] * history[k].y[i] }
    }
    if let last = history.last {
      let gamma = 1 / (last.rho * dot(last.y, last.y))
      for i in q.indices { q[i] *= gamma }
    }
    for k in history.indices {
      let b = history[k].rho * dot(history[k].y, q)
      for i in q.indices { q[i] += (alphas[k] - b) * history[k].s[i] }
    }
    return q.map { -$0 }
  }

  /// The fused recursion gives the textbook one's result to the bit, for histories of
  /// every length up to a full memory and beyond the one a vector can hold in a register.
  func testFusedRecursionIsBitIdenticalToTheTextbookOne() {
    var rng = SplitMix64(seed: 7)
    let n = 1001
    func vector() -> [Double] { (0..<n).map { _ in Double.random(in: -1...1, using: &rng) } }
    for m in [0, 1, 2, 3, 10] {
      var optimizer = Optimizer(
        configuration: OptimizerConfiguration(
          method: .lbfgs(memory: 10), regularization: Regularization(l2: 0.1)),
        initial: .zeros(features: n), rowCount: 10)
      optimizer.history = (0..<m).map { _ in
        let s = vector()
        // y close to a positive multiple of s keeps sᵀy > 0, as accepted pairs have.
        let y = zip(s, vector()).map { 2 * $0 + 0.1 * $1 }
        var sy = 0.0
        for i in 0..<n { sy += s[i] * y[i] }
        return CurvaturePair(s: s, y: y, rho: 1 / sy)
      }
      let g = vector()
      let fused = optimizer.twoLoop(g)
      let reference = textbook(optimizer.history, g)
      XCTAssertEqual(fused.count, n)
      XCTAssertTrue(
        zip(fused, reference).allSatisfy { $0.bitPattern == $1.bitPattern }, "memory \(m)")
      // A descent direction: −Hg·g < 0 for a positive definite H.
      var dg = 0.0
      for i in 0..<n { dg += fused[i] * g[i] }
      XCTAssertLessThan(dg, 0, "memory \(m)")
    }
  }
}
