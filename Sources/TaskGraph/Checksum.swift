import CTaskGraphKernels
import Foundation

/// The 64-bit FNV-1a hash: the checksum of version-1 checkpoints, and the fingerprint of
/// small things (data-file ends, configurations).
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

/// CRC-32C (Castagnoli), the checksum of version-2 checkpoints: the SSE4.2 `crc32`
/// instruction where the processor has it (about 10 GB/s here, against 1 GB/s for FNV-1a
/// byte by byte), slicing-by-8 tables otherwise.
///
/// Detects torn writes and bit rot (every burst error of up to 32 bits), not tampering.
package struct CRC32C: Sendable {
  /// The CRC of the bytes fed so far.
  package private(set) var value: UInt32 = 0
  private let hardware: Bool

  /// A CRC over no bytes; `hardware: false` forces the portable tables (for tests).
  package init(hardware: Bool = true) { self.hardware = hardware }

  /// Feeds `bytes` into the CRC.
  package mutating func update(_ bytes: UnsafeRawBufferPointer) {
    guard let base = bytes.baseAddress else { return }
    value = tg_crc32c(value, base, bytes.count, hardware ? 1 : 0)
  }

  /// Feeds contiguous `bytes` (an array, a slice) into the CRC.
  package mutating func update(_ bytes: some ContiguousBytes) {
    bytes.withUnsafeBytes { update($0) }
  }
}
