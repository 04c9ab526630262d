/// A small, fast, seedable random number generator (Steele, Lea & Flood's SplitMix64).
///
/// Its whole state is one `UInt64`, so it is `Codable` and a checkpointed optimizer
/// resumes with exactly the random stream it would have drawn.
public struct SplitMix64: RandomNumberGenerator, Sendable, Codable, Hashable {
  /// The generator's state; advances by a fixed odd constant per draw.
  public var state: UInt64

  /// A generator seeded with `seed`.
  public init(seed: UInt64) { state = seed }

  /// The next 64 random bits.
  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
