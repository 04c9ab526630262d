/// Bytes in parts: raw bytes, and vectors of doubles kept as the arrays they are.
///
/// Data requests, their responses and checkpoints carry their contents this way, so a
/// task's large vectors (parameters, gradients, optimizer state) are never gathered into
/// one buffer: in process a payload travels by reference, the gRPC transport writes the
/// parts straight into its message buffer and reads doubles straight into arrays, and a
/// checkpoint store checksums and writes the parts one after the other.
///
/// Two payloads are equal when their bytes are, however they are split into parts.
public struct Payload: Sendable, Equatable, ExpressibleByArrayLiteral {
  /// One piece of a payload.
  public enum Part: Sendable {
    /// Bytes as they are.
    case bytes([UInt8])
    /// Doubles as their little-endian IEEE 754 bytes.
    case doubles([Double])

    /// The part's size in bytes.
    public var count: Int {
      switch self {
      case .bytes(let b): b.count
      case .doubles(let d): d.count * 8
      }
    }

    /// Calls `body` with the part's bytes.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
      switch self {
      case .bytes(let b): try b.withUnsafeBytes(body)
      // Doubles are stored little-endian on every platform this runs on (x86-64, arm64).
      case .doubles(let d): try d.withUnsafeBytes(body)
      }
    }
  }

  /// The contents, in order.
  public var parts: [Part]

  /// A payload of `bytes`, in one part.
  public init(_ bytes: [UInt8] = []) {
    self.parts = bytes.isEmpty ? [] : [.bytes(bytes)]
  }

  /// A payload whose contents are `parts` one after the other.
  public init(parts: [Part]) {
    self.parts = parts
  }

  public init(arrayLiteral elements: UInt8...) {
    self.init(elements)
  }

  /// The size in bytes.
  public var count: Int { parts.reduce(0) { $0 + $1.count } }

  /// Whether there are no bytes.
  public var isEmpty: Bool { parts.allSatisfy { $0.count == 0 } }

  /// The contents as one array (no copy when they are one part of bytes).
  public var bytes: [UInt8] {
    if parts.count == 1, case .bytes(let b) = parts[0] { return b }
    var out: [UInt8] = []
    out.reserveCapacity(count)
    for part in parts { part.withUnsafeBytes { out.append(contentsOf: $0) } }
    return out
  }

  /// Copies the contents into `buffer`, which holds at least `count` bytes.
  public func copyBytes(to buffer: UnsafeMutableRawBufferPointer) {
    precondition(buffer.count >= count, "buffer of \(buffer.count) bytes for \(count)")
    var offset = 0
    for part in parts {
      part.withUnsafeBytes { source in
        guard let base = source.baseAddress, source.count > 0 else { return }
        (buffer.baseAddress! + offset).copyMemory(from: base, byteCount: source.count)
        offset += source.count
      }
    }
  }

  public static func == (a: Payload, b: Payload) -> Bool {
    a.count == b.count && a.bytes == b.bytes
  }
}
