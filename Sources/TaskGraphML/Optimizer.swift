import Foundation
import TaskGraphLinalg

/// What one optimizer iteration did.
public struct StepOutcome: Sendable, Hashable {
  /// Iterations completed, including this one.
  public var iteration: Int
  /// The objective `F` at the new parameters (for SGD: on the mini-batch, before the update).
  public var objective: Double
  /// The objective before the iteration.
  public var previousObjective: Double
  /// The norm of the gradient at the new parameters: the pseudo-gradient with an L1
  /// penalty, the projected gradient with bounds (for SGD: the mini-batch gradient).
  public var gradientNorm: Double
  /// The accepted step length (the learning rate for SGD).
  public var stepSize: Double
  /// Gradient evaluations this iteration used.
  public var evaluations: Int
  /// `true` if the line search found no acceptable step; the parameters did not move.
  public var lineSearchFailed: Bool
  /// SGD: the objective over all rows has not improved by the tolerance for `patience`
  /// passes in a row, so more passes are not expected to help.
  public var stalled = false
}

/// The cached evaluation at the optimizer's current parameters.
struct EvaluatedPoint: Sendable, Codable, Hashable {
  /// Mean loss plus `(l2/2)‖w‖²`.
  var smooth: Double
  /// `smooth + l1‖w‖₁`.
  var objective: Double
  /// Gradient of `smooth`, `d + 1` entries (the last for the intercept).
  var gradient: [Double]

  init(smooth: Double, objective: Double, gradient: [Double]) {
    self.smooth = smooth
    self.objective = objective
    self.gradient = gradient
  }

  enum CodingKeys: String, CodingKey { case smooth, objective, gradient }

  init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    smooth = try c.decode(Double.self, forKey: .smooth)
    objective = try c.decode(Double.self, forKey: .objective)
    gradient = try c.decodeDoubles(forKey: .gradient, sink: decoder.vectorSink)
  }

  func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(smooth, forKey: .smooth)
    try c.encode(objective, forKey: .objective)
    try c.encodeDoubles(gradient, forKey: .gradient, sink: encoder.vectorSink)
  }
}

/// One stored L-BFGS curvature pair.
struct CurvaturePair: Sendable, Codable, Hashable {
  var s: [Double]
  var y: [Double]
  var rho: Double

  init(s: [Double], y: [Double], rho: Double) {
    self.s = s
    self.y = y
    self.rho = rho
  }

  enum CodingKeys: String, CodingKey { case s, y, rho }

  init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    s = try c.decodeDoubles(forKey: .s, sink: decoder.vectorSink)
    y = try c.decodeDoubles(forKey: .y, sink: decoder.vectorSink)
    rho = try c.decode(Double.self, forKey: .rho)
  }

  func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encodeDoubles(s, forKey: .s, sink: encoder.vectorSink)
    try c.encodeDoubles(y, forKey: .y, sink: encoder.vectorSink)
    try c.encode(rho, forKey: .rho)
  }
}

/// Where an encoder puts the optimizer's vectors instead of writing them as text: the
/// encoded document refers to each by its index, and the caller stores the vectors as raw
/// bytes beside it (see `VectorSink.encode`). Used by one encode or decode call at a time.
public final class VectorSink: @unchecked Sendable {
  // Unchecked Sendable: an instance is used by one encoding or decoding call at a time.
  /// The user-info key under which encoders and decoders find the sink.
  public static let key = CodingUserInfoKey(rawValue: "taskgraph.vectors")!
  /// The vectors, in the order they were encoded.
  public private(set) var vectors: [[Double]]

  public init(vectors: [[Double]] = []) { self.vectors = vectors }

  func add(_ v: [Double]) -> Int {
    vectors.append(v)
    return vectors.count - 1
  }

  /// `value` as JSON with its vectors stored after it as little-endian IEEE bytes: exact
  /// (a resumed run continues bit-identically) and written at memory speed, where decimal
  /// text of a million-feature optimizer's state takes seconds. Layout: the JSON's byte
  /// count (8 bytes), the JSON, then per vector its element count (8 bytes) and elements.
  public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
    let pieces = try encodePieces(value)
    var out: [UInt8] = []
    out.reserveCapacity(pieces.reduce(0) { $0 + $1.count })
    for piece in pieces {
      switch piece {
      case .bytes(let b): out += b
      case .doubles(let d): d.withUnsafeBytes { out += $0 }
      }
    }
    return out
  }

  /// A piece of `encode`'s output.
  public enum Piece: Sendable {
    case bytes([UInt8])
    /// Doubles, written as their little-endian IEEE bytes.
    case doubles([Double])

    /// The piece's size in bytes.
    public var count: Int {
      switch self {
      case .bytes(let b): b.count
      case .doubles(let d): 8 * d.count
      }
    }
  }

  /// `encode`'s output in pieces, one after the other: the JSON with its length, then per
  /// vector its count and the vector itself, shared rather than copied (a million-feature
  /// L-BFGS state is 170 MB, which a writer can write and checksum piece by piece).
  public static func encodePieces<T: Encodable>(_ value: T) throws -> [Piece] {
    let sink = VectorSink()
    let encoder = JSONEncoder()
    encoder.userInfo[key] = sink
    let json = try encoder.encode(value)
    func le(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt64(v).littleEndian) { Array($0) } }
    var pieces: [Piece] = [.bytes(le(json.count) + json)]
    for v in sink.vectors {
      pieces.append(.bytes(le(v.count)))
      pieces.append(.doubles(v))
    }
    return pieces
  }

  /// Reads what `encode` wrote.
  public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
    var offset = 0
    func take(_ n: Int) throws -> Range<Int> {
      guard n >= 0, n <= bytes.count - offset else {
        throw DecodingError.dataCorrupted(
          .init(codingPath: [], debugDescription: "truncated vector document"))
      }
      defer { offset += n }
      return offset..<(offset + n)
    }
    func u64() throws -> Int {
      let r = try take(8)
      let v = bytes[r].withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
      guard v <= UInt64(Int.max / 8) else {
        throw DecodingError.dataCorrupted(
          .init(codingPath: [], debugDescription: "bad length in vector document"))
      }
      return Int(v)
    }
    let json = bytes[try take(try u64())]
    var vectors: [[Double]] = []
    while offset < bytes.count {
      let n = try u64()
      let r = try take(n * 8)
      vectors.append(
        [Double](unsafeUninitializedCapacity: n) { out, count in
          bytes[r].withUnsafeBytes { UnsafeMutableRawBufferPointer(out).copyMemory(from: $0) }
          count = n
        })
    }
    let decoder = JSONDecoder()
    decoder.userInfo[key] = VectorSink(vectors: vectors)
    return try decoder.decode(type, from: Data(json))
  }
}

// Vectors of the optimizer's state go to a `VectorSink` when the encoder has one (stored as
// raw bytes by the caller); otherwise they are written as the base64 of their
// little-endian IEEE bytes, exact and compact. Decimal arrays are read too.
extension KeyedEncodingContainer {
  mutating func encodeDoubles(_ values: [Double], forKey key: Key, sink: VectorSink?) throws {
    if let sink {
      try encode(sink.add(values), forKey: key)
      return
    }
    let data = values.withUnsafeBufferPointer { b in
      Data(bytes: b.baseAddress ?? UnsafePointer(bitPattern: 8)!, count: b.count * 8)
    }
    try encode(data.base64EncodedString(), forKey: key)
  }
}

extension KeyedDecodingContainer {
  func decodeDoubles(forKey key: Key, sink: VectorSink?) throws -> [Double] {
    if let sink, let index = try? decode(Int.self, forKey: key) {
      guard sink.vectors.indices.contains(index) else {
        throw DecodingError.dataCorruptedError(
          forKey: key, in: self, debugDescription: "no stored vector \(index)")
      }
      return sink.vectors[index]
    }
    guard let text = try? decode(String.self, forKey: key) else {
      return try decode([Double].self, forKey: key)
    }
    guard let data = Data(base64Encoded: text), data.count % 8 == 0 else {
      throw DecodingError.dataCorruptedError(
        forKey: key, in: self, debugDescription: "not a base64 vector of doubles")
    }
    return [Double](unsafeUninitializedCapacity: data.count / 8) { out, count in
      data.withUnsafeBytes { raw in
        UnsafeMutableRawBufferPointer(out).copyMemory(from: raw)
      }
      count = data.count / 8
    }
  }
}

/// A steppable optimizer for the regularised objective of `Regularization`.
///
/// The optimizer is a plain value: its whole state (iteration, parameters, the cached
/// objective and gradient at the parameters, the L-BFGS curvature pairs, the step size and
/// the SGD random state) is `Codable`, so it can be checkpointed mid-run and resumed with
/// bit-identical results. It performs no I/O: each `step` asks its caller for gradient sums
/// through `evaluate` (several times when a line search backtracks), so the sums may come
/// from a local matrix or from a parameter server.
///
/// Internally the parameters are one vector `θ` of `d + 1` entries, the intercept last and
/// never penalised or bounded.
public struct Optimizer: Sendable, Codable {
  /// The method, penalty and line search settings.
  public let configuration: OptimizerConfiguration
  /// The rows of the full data set (`n`), used to draw SGD batches.
  public let rowCount: Int
  /// Completed iterations.
  public internal(set) var iteration: Int
  /// Gradient evaluations requested so far.
  public internal(set) var evaluations: Int
  /// The last accepted step length (the learning rate for SGD).
  public internal(set) var stepSize: Double
  /// The state of the SGD random number generator.
  public internal(set) var rng: SplitMix64
  var theta: [Double]
  var current: EvaluatedPoint?
  var history: [CurvaturePair]
  /// SGD: the lowest objective over all rows seen at the end of a pass.
  var bestObjective: Double?
  /// SGD: passes in a row that did not improve `bestObjective` by the tolerance.
  var passesWithoutImprovement = 0
  /// Variance-reduced SGD: the objectives after the last passes that lowered it, oldest
  /// first (at most `2·OptimizationProgress.window + 1`).
  var passObjectives: [Double] = []

  enum CodingKeys: String, CodingKey {
    case configuration, rowCount, iteration, evaluations, stepSize, rng, theta, current, history
    case bestObjective, passesWithoutImprovement, passObjectives
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    configuration = try c.decode(OptimizerConfiguration.self, forKey: .configuration)
    rowCount = try c.decode(Int.self, forKey: .rowCount)
    iteration = try c.decode(Int.self, forKey: .iteration)
    evaluations = try c.decode(Int.self, forKey: .evaluations)
    stepSize = try c.decode(Double.self, forKey: .stepSize)
    rng = try c.decode(SplitMix64.self, forKey: .rng)
    theta = try c.decodeDoubles(forKey: .theta, sink: decoder.vectorSink)
    current = try c.decodeIfPresent(EvaluatedPoint.self, forKey: .current)
    history = try c.decode([CurvaturePair].self, forKey: .history)
    bestObjective = try c.decodeIfPresent(Double.self, forKey: .bestObjective)
    passesWithoutImprovement =
      try c.decodeIfPresent(Int.self, forKey: .passesWithoutImprovement) ?? 0
    passObjectives = try c.decodeIfPresent([Double].self, forKey: .passObjectives) ?? []
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(configuration, forKey: .configuration)
    try c.encode(rowCount, forKey: .rowCount)
    try c.encode(iteration, forKey: .iteration)
    try c.encode(evaluations, forKey: .evaluations)
    try c.encode(stepSize, forKey: .stepSize)
    try c.encode(rng, forKey: .rng)
    try c.encodeDoubles(theta, forKey: .theta, sink: encoder.vectorSink)
    try c.encodeIfPresent(current, forKey: .current)
    try c.encode(history, forKey: .history)
    try c.encodeIfPresent(bestObjective, forKey: .bestObjective)
    try c.encode(passesWithoutImprovement, forKey: .passesWithoutImprovement)
    try c.encode(passObjectives, forKey: .passObjectives)
  }

  /// An optimizer at `initial` for data with `rowCount` rows.
  ///
  /// With box constraints the initial coefficients are projected into the box.
  public init(configuration: OptimizerConfiguration, initial: Parameters, rowCount: Int) {
    precondition(rowCount > 0, "rowCount must be positive")
    self.configuration = configuration
    self.rowCount = rowCount
    self.iteration = 0
    self.evaluations = 0
    self.stepSize = 1
    self.history = []
    self.current = nil
    var theta = initial.weights + [initial.intercept]
    switch configuration.method {
    case .sgd(let sgd):
      rng = SplitMix64(seed: sgd.seed)
      stepSize = sgd.schedule.rate(at: 0)
    case .projectedGradient(let bounds):
      precondition(
        bounds.lower.count == initial.weights.count,
        "bounds for \(bounds.lower.count) coefficients, model has \(initial.weights.count)")
      for j in 0..<bounds.lower.count { theta[j] = bounds.clamp(theta[j], at: j) }
      rng = SplitMix64(seed: 0)
    default:
      rng = SplitMix64(seed: 0)
    }
    self.theta = theta
  }

  /// The current parameters.
  public var parameters: Parameters {
    Parameters(weights: Array(theta.dropLast()), intercept: theta[theta.count - 1])
  }

  /// The number of coefficients `d`.
  public var featureCount: Int { theta.count - 1 }

  /// The objective at the current parameters if it has been evaluated over all rows.
  public var objective: Double? { current?.objective }

  /// The full objective `F` at the current parameters, evaluating it if not cached.
  public mutating func prepare(evaluate: (EvaluationRequest) throws -> GradientSums) throws
    -> Double
  {
    try ensureCurrent(evaluate).objective
  }

  /// The stop-criterion gradient norm at the current parameters (pseudo-gradient with L1,
  /// projected gradient with bounds), evaluating if not cached.
  public mutating func gradientNorm(evaluate: (EvaluationRequest) throws -> GradientSums) throws
    -> Double
  {
    let point = try ensureCurrent(evaluate)
    return norm(stationarity(theta, point.gradient))
  }

  /// Runs one iteration.
  ///
  /// - Parameter evaluate: returns the gradient sums of the data term for a request; called
  ///   once per trial point (more than once when the line search backtracks).
  /// - Returns: what the iteration did; on a failed line search the parameters are unchanged.
  public mutating func step(evaluate: (EvaluationRequest) throws -> GradientSums) throws
    -> StepOutcome
  {
    switch configuration.method {
    case .gradientDescent:
      return try gradientDescentStep(evaluate)
    case .sgd(let sgd):
      return try sgdStep(sgd, evaluate)
    case .lbfgs(let m):
      return try quasiNewtonStep(memory: m, orthantWise: false, evaluate)
    case .owlqn(let m):
      return try quasiNewtonStep(memory: m, orthantWise: true, evaluate)
    case .projectedGradient(let bounds):
      return try projectedStep(bounds, evaluate)
    }
  }

  /// Runs one iteration against a gradient source.
  public mutating func step(source: some GradientSource) throws -> StepOutcome {
    precondition(source.featureCount == featureCount, "source and optimizer disagree on d")
    return try step(evaluate: { try source.gradientSums($0) })
  }

  // MARK: - Evaluation

  var penalisedCount: Int { theta.count - 1 }

  mutating func evaluatePoint(
    _ point: [Double], batch: Batch, _ evaluate: (EvaluationRequest) throws -> GradientSums
  ) throws -> EvaluatedPoint {
    let d = penalisedCount
    let params = Parameters(weights: Array(point[0..<d]), intercept: point[d])
    let sums = try evaluate(EvaluationRequest(parameters: params, batch: batch))
    evaluations += 1
    precondition(
      sums.gradient.count == d, "gradient sums have \(sums.gradient.count) entries, expected \(d)")
    precondition(sums.rows > 0, "gradient sums over zero rows")
    let n = Double(sums.rows)
    let reg = configuration.regularization
    var gradient = [Double](repeating: 0, count: d + 1)
    var sq = 0.0
    var abs1 = 0.0
    // The penalty is on wⱼ = vⱼ/sⱼ (sⱼ = 1 without scales, which divides exactly): its
    // gradient with respect to vⱼ is l2·wⱼ/sⱼ.
    for j in 0..<d {
      let s = reg.scales?[j] ?? 1
      let w = point[j] / s
      gradient[j] = sums.gradient[j] / n + reg.l2 * w / s
      sq += w * w
      abs1 += abs(w)
    }
    gradient[d] = configuration.fitIntercept ? sums.intercept / n : 0
    let smooth = sums.loss / n + 0.5 * reg.l2 * sq
    return EvaluatedPoint(smooth: smooth, objective: smooth + reg.l1 * abs1, gradient: gradient)
  }

  mutating func ensureCurrent(_ evaluate: (EvaluationRequest) throws -> GradientSums) throws
    -> EvaluatedPoint
  {
    if let current { return current }
    let p = try evaluatePoint(theta, batch: .all, evaluate)
    current = p
    return p
  }

  /// The vector whose norm measures stationarity at `point` with smooth gradient `g`.
  func stationarity(_ point: [Double], _ g: [Double]) -> [Double] {
    if case .projectedGradient(let bounds) = configuration.method {
      return projectedGradient(point, effectiveBoxGradient(g), bounds)
    }
    return pseudoGradient(point, g, configuration.regularization)
  }

  /// The sufficient-decrease test `new ≤ old + c₁·predicted` (`predicted` < 0 is the
  /// decrease the local model promises). The rounding slack rescues a step only when the
  /// promised decrease is itself at rounding level, so it never accepts a poor step far
  /// from the optimum.
  func accepts(new: Double, old: Double, decrease predicted: Double) -> Bool {
    if !new.isFinite { return false }
    if new <= old + configuration.lineSearch.armijo * predicted { return true }
    let noise = configuration.lineSearch.relativeSlack * abs(old)
    return abs(predicted) <= noise && new <= old + noise
  }

  func outcome(
    previous: Double, objective: Double, gradientNorm: Double, evaluationsBefore: Int,
    failed: Bool
  ) -> StepOutcome {
    StepOutcome(
      iteration: iteration, objective: objective, previousObjective: previous,
      gradientNorm: gradientNorm, stepSize: stepSize, evaluations: evaluations - evaluationsBefore,
      lineSearchFailed: failed)
  }
}

// MARK: - Vector helpers (d is small next to n; plain loops are clear and fast enough)

@inline(__always)
func dot(_ a: [Double], _ b: [Double]) -> Double {
  var s = 0.0
  for i in a.indices { s += a[i] * b[i] }
  return s
}

@inline(__always)
func norm(_ a: [Double]) -> Double {
  dot(a, a).squareRoot()
}

/// The minimum-norm subgradient of `smooth + l1‖w‖₁` (Andrew & Gao's pseudo-gradient); the
/// last entry (intercept) is unpenalised. `penalty`'s scales weigh each coefficient's `l1`.
func pseudoGradient(_ point: [Double], _ g: [Double], _ penalty: Regularization) -> [Double] {
  if penalty.l1 == 0 { return g }
  var pg = g
  for j in 0..<(point.count - 1) {
    let l1 = penalty.l1(at: j)
    let w = point[j]
    if w > 0 {
      pg[j] = g[j] + l1
    } else if w < 0 {
      pg[j] = g[j] - l1
    } else if g[j] + l1 < 0 {
      pg[j] = g[j] + l1
    } else if g[j] - l1 > 0 {
      pg[j] = g[j] - l1
    } else {
      pg[j] = 0
    }
  }
  return pg
}

/// The projected gradient: zero where the bound blocks descent.
func projectedGradient(_ point: [Double], _ g: [Double], _ bounds: Bounds) -> [Double] {
  var pg = g
  for j in 0..<(point.count - 1) {
    if point[j] <= bounds.lower[j] {
      pg[j] = min(0, g[j])
    } else if point[j] >= bounds.upper[j] {
      pg[j] = max(0, g[j])
    }
  }
  return pg
}

extension Encoder {
  var vectorSink: VectorSink? { userInfo[VectorSink.key] as? VectorSink }
}

extension Decoder {
  var vectorSink: VectorSink? { userInfo[VectorSink.key] as? VectorSink }
}

extension Optimizer {
  /// Whether this is SGD, whose iterations are passes over the rows.
  public var isStochastic: Bool {
    if case .sgd = configuration.method { return true }
    return false
  }
}
