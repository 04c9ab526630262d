import Foundation
import TaskGraphLinalg
import TaskGraphML
import XCTest

/// A labelled data set read by the tests' own CSV reader.
struct Dataset {
  var features: [[Double]]
  var labels: [Double]
  var rows: Int { labels.count }
  var cols: Int { features.first?.count ?? 0 }

  func matrix<T: BLASScalar>(_: T.Type = T.self) -> Matrix<T> {
    Matrix<T>(features.map { $0.map { T($0) } })
  }

  /// Features scaled to mean 0 and (population) standard deviation 1.
  func standardised() -> Dataset {
    let n = Double(rows)
    var out = features
    for j in 0..<cols {
      let mean = features.reduce(0) { $0 + $1[j] } / n
      let variance = features.reduce(0) { $0 + ($1[j] - mean) * ($1[j] - mean) } / n
      let sd = variance.squareRoot()
      for i in 0..<rows { out[i][j] = (features[i][j] - mean) / sd }
    }
    return Dataset(features: out, labels: labels)
  }
}

/// Reads a numeric CSV with a header whose first column is the label. No quoting, no gaps.
func loadCSV(_ name: String, file: StaticString = #filePath) throws -> Dataset {
  // Tests/TaskGraphMLTests/TestSupport.swift → the package root.
  let root = URL(fileURLWithPath: "\(file)").deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
  let text = try String(
    contentsOf: root.appendingPathComponent("datasets").appendingPathComponent(name),
    encoding: .utf8)
  var features: [[Double]] = []
  var labels: [Double] = []
  for (number, line) in text.split(whereSeparator: \.isNewline).enumerated() where number > 0 {
    let values = try line.split(separator: ",").map { field -> Double in
      guard let v = Double(field) else {
        throw NSError(
          domain: "csv", code: 1,
          userInfo: [NSLocalizedDescriptionKey: "\(name):\(number + 1): not a number: \(field)"])
      }
      return v
    }
    labels.append(values[0])
    features.append(Array(values.dropFirst()))
  }
  return Dataset(features: features, labels: labels)
}

/// Solves `A x = b` by Gaussian elimination with partial pivoting (independent of LAPACK).
func gaussianSolve(_ a: [[Double]], _ b: [Double]) -> [Double] {
  let n = b.count
  var m = a
  var r = b
  for k in 0..<n {
    var pivot = k
    for i in (k + 1)..<max(n, k + 1) where abs(m[i][k]) > abs(m[pivot][k]) { pivot = i }
    m.swapAt(k, pivot)
    r.swapAt(k, pivot)
    for i in (k + 1)..<max(n, k + 1) {
      let f = m[i][k] / m[k][k]
      if f == 0 { continue }
      for j in k..<n { m[i][j] -= f * m[k][j] }
      r[i] -= f * r[k]
    }
  }
  var x = [Double](repeating: 0, count: n)
  for k in stride(from: n - 1, through: 0, by: -1) {
    var s = r[k]
    for j in (k + 1)..<max(n, k + 1) { s -= m[k][j] * x[j] }
    x[k] = s / m[k][k]
  }
  return x
}

/// Closed-form ridge `min (1/n) Σ ½(xᵢ·w + b − yᵢ)² + (l2/2)‖w‖²` computed in the test:
/// normal equations of the augmented design `[X 1]`, intercept unpenalised.
func referenceRidge(_ data: Dataset, l2: Double) -> (w: [Double], b: Double) {
  let d = data.cols
  let n = Double(data.rows)
  var a = [[Double]](repeating: [Double](repeating: 0, count: d + 1), count: d + 1)
  var rhs = [Double](repeating: 0, count: d + 1)
  for i in 0..<data.rows {
    let row = data.features[i] + [1]
    for p in 0...d {
      rhs[p] += row[p] * data.labels[i]
      for q in 0...d { a[p][q] += row[p] * row[q] }
    }
  }
  for j in 0..<d { a[j][j] += n * l2 }
  let x = gaussianSolve(a, rhs)
  return (Array(x.prefix(d)), x[d])
}

/// The mean-loss gradient `(1/n) Σ rᵢ xᵢ` and `(1/n) Σ rᵢ`, computed in the test.
func referenceGradient(
  _ data: Dataset, w: [Double], b: Double, logistic: Bool
) -> (g: [Double], gb: Double) {
  var g = [Double](repeating: 0, count: data.cols)
  var gb = 0.0
  for i in 0..<data.rows {
    var z = b
    for j in 0..<data.cols { z += data.features[i][j] * w[j] }
    let r = (logistic ? 1 / (1 + exp(-z)) : z) - data.labels[i]
    for j in 0..<data.cols { g[j] += r * data.features[i][j] }
    gb += r
  }
  let n = Double(data.rows)
  return (g.map { $0 / n }, gb / n)
}

/// `max |a − b| / max(max |b|, 1)`.
func relativeError(_ a: [Double], _ b: [Double]) -> Double {
  precondition(a.count == b.count)
  var diff = 0.0
  var scale = 1.0
  for i in a.indices {
    diff = max(diff, abs(a[i] - b[i]))
    scale = max(scale, abs(b[i]))
  }
  return diff / scale
}

/// A clock that advances by `tick` seconds every time it is read.
final class TickingClock: TrainingClock {
  var now = 0.0
  let tick: Double
  init(tick: Double) { self.tick = tick }
  func seconds() -> Double {
    now += tick
    return now
  }
}
