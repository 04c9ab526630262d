/// Lower and upper bounds per coefficient for the projected gradient method.
///
/// The intercept is never bounded. Use `-.infinity` / `.infinity` for no bound.
public struct Bounds: Sendable, Hashable {
  /// Lower bounds, one per coefficient.
  public var lower: [Double]
  /// Upper bounds, one per coefficient.
  public var upper: [Double]

  /// Bounds `lower[j] ≤ w[j] ≤ upper[j]`; traps if the lengths differ or a lower bound
  /// exceeds its upper bound.
  public init(lower: [Double], upper: [Double]) {
    precondition(lower.count == upper.count, "bounds: \(lower.count) lower, \(upper.count) upper")
    precondition(zip(lower, upper).allSatisfy { $0 <= $1 }, "a lower bound exceeds its upper bound")
    self.lower = lower
    self.upper = upper
  }

  /// `w ≥ 0` for `count` coefficients (non-negative least squares).
  public static func nonNegative(count: Int) -> Bounds {
    Bounds(
      lower: [Double](repeating: 0, count: count),
      upper: [Double](repeating: .infinity, count: count))
  }

  /// `value` clamped into the bounds of coefficient `j`.
  @inlinable
  public func clamp(_ value: Double, at j: Int) -> Double {
    min(max(value, lower[j]), upper[j])
  }
}

extension Bounds: Codable {
  private enum CodingKeys: String, CodingKey {
    case lower
    case upper
  }

  // JSON has no infinities: an absent bound is encoded as null.
  /// Decodes bounds; `null` stands for an infinite bound.
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let lower = try c.decode([Double?].self, forKey: .lower).map { $0 ?? -.infinity }
    let upper = try c.decode([Double?].self, forKey: .upper).map { $0 ?? .infinity }
    guard lower.count == upper.count, zip(lower, upper).allSatisfy({ $0 <= $1 }) else {
      throw DecodingError.dataCorruptedError(
        forKey: .upper, in: c, debugDescription: "bounds differ in length or are crossed")
    }
    self.init(lower: lower, upper: upper)
  }

  /// Encodes bounds, writing infinite bounds as `null`.
  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(lower.map { $0.isFinite ? $0 : nil }, forKey: .lower)
    try c.encode(upper.map { $0.isFinite ? $0 : nil }, forKey: .upper)
  }
}
