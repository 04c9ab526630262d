/// The 64-bit FNV-1a hash, used as the checkpoint checksum.
///
/// Not cryptographic: it detects torn writes and bit rot, not tampering. O(n) in the
/// number of bytes.
package struct FNV1a64: Sendable {
  private static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
  private static let prime: UInt64 = 0x0000_0100_0000_01b3
  /// The hash of the bytes fed so far.
  package private(set) var value: UInt64 = FNV1a64.offsetBasis

  package init() {}

  /// Feeds `bytes` into the hash.
  package mutating func update(_ bytes: some Sequence<UInt8>) {
    // Contiguous bytes (arrays, slices, Data) are hashed through a pointer, several times
    // faster than generic iteration; the hash is the same.
    let done: Void? = bytes.withContiguousStorageIfAvailable { buffer in
      var h = value
      for byte in buffer {
        h ^= UInt64(byte)
        h &*= FNV1a64.prime
      }
      value = h
    }
    if done != nil { return }
    var h = value
    for byte in bytes {
      h ^= UInt64(byte)
      h &*= FNV1a64.prime
    }
    value = h
  }

  /// The hash of `bytes`.
  package static func hash(_ bytes: some Sequence<UInt8>) -> UInt64 {
    var h = FNV1a64()
    h.update(bytes)
    return h.value
  }
}
