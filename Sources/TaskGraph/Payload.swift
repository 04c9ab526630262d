/// Bytes in parts: raw bytes, and vectors of doubles kept as the arrays (or received
/// bytes) they are.
///
/// Data requests, their responses and checkpoints carry their contents this way, so a
/// task's large vectors (parameters, gradients, optimizer state) are never gathered into
/// one buffer: in process a payload travels by reference, the gRPC transport writes the
/// parts straight into its message buffer and leaves received doubles in the message's
/// bytes (``SharedDoubles``), and a checkpoint store checksums and writes the parts one
/// after the other.
///
/// Two payloads are equal when their bytes are, however they are split into parts.
public struct Payload: Sendable, Equatable, ExpressibleByArrayLiteral {
  /// One piece of a payload.
  public enum Part: Sendable {
    /// Bytes as they are.
    case bytes([UInt8])
    /// Doubles as their little-endian IEEE 754 bytes.
    case doubles([Double])
    /// Doubles read in place from bytes that belong to someone else, such as the buffer a
    /// message was received into: a receiver takes its vectors without copying them.
    case sharedDoubles(SharedDoubles)

    /// The part's size in bytes.
    public var count: Int {
      switch self {
      case .bytes(let b): b.count
      case .doubles(let d): d.count * 8
      case .sharedDoubles(let d): d.count * 8
      }
    }

    /// Calls `body` with the part's bytes.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
      switch self {
      case .bytes(let b): try b.withUnsafeBytes(body)
      // Doubles are stored little-endian on every platform this runs on (x86-64, arm64).
      case .doubles(let d): try d.withUnsafeBytes(body)
      case .sharedDoubles(let d): try d.withUnsafeBytes(body)
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

/// Bytes that stay as they are for as long as anyone holds them, such as a received
/// message's buffer: a ``SharedDoubles`` reads its values in place from them.
public protocol SharedBytes: Sendable {
  /// Calls `body` with the bytes; the same bytes on every call.
  func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

/// An array's bytes, as shared bytes.
struct ArrayBytes: SharedBytes {
  let array: [Double]

  func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try array.withUnsafeBytes(body)
  }
}

/// A vector of doubles held in shared bytes at any alignment, or in an array: how a
/// received message hands on a vector of megabytes without copying it.
///
/// The bytes need not be aligned for `Double` (a message's contents start wherever the
/// transport's framing puts them), so the values are read with unaligned loads or copied
/// with `memcpy`, never through a typed pointer.
public struct SharedDoubles: Sendable, Equatable {
  /// What holds the bytes.
  public let storage: any SharedBytes
  /// Where the first value starts in `storage`'s bytes.
  public let byteOffset: Int
  /// The number of doubles.
  public let count: Int

  /// `count` doubles starting at `byteOffset` of `storage`'s bytes.
  public init(_ storage: any SharedBytes, byteOffset: Int, count: Int) {
    precondition(byteOffset >= 0 && count >= 0, "offset \(byteOffset), count \(count)")
    self.storage = storage
    self.byteOffset = byteOffset
    self.count = count
  }

  /// The values of `array`, without a copy.
  public init(_ array: [Double]) {
    self.init(ArrayBytes(array: array), byteOffset: 0, count: array.count)
  }

  /// Calls `body` with the values' bytes (little-endian IEEE 754, at any alignment).
  public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try storage.withUnsafeBytes { raw in
      precondition(byteOffset + 8 * count <= raw.count, "shared doubles past their bytes")
      return try body(UnsafeRawBufferPointer(rebasing: raw[byteOffset..<(byteOffset + 8 * count)]))
    }
  }

  /// The array these values are, if they are one whole array (no copy); else nil.
  public var wholeArray: [Double]? {
    guard let held = storage as? ArrayBytes, byteOffset == 0, count == held.array.count
    else { return nil }
    return held.array
  }

  /// The values as an array: the array itself when they are one, else a copy.
  public var array: [Double] {
    if let held = wholeArray { return held }
    return [Double](unsafeUninitializedCapacity: count) { out, n in
      if count > 0 { copyBytes(to: UnsafeMutableRawPointer(out.baseAddress!)) }
      n = count
    }
  }

  /// Copies the values' `8 * count` bytes to `destination`, byte by byte (neither side need
  /// be aligned for `Double`).
  public func copyBytes(to destination: UnsafeMutableRawPointer) {
    withUnsafeBytes { raw in
      guard let base = raw.baseAddress else { return }
      destination.copyMemory(from: base, byteCount: raw.count)
    }
  }

  /// The values in `range`, in the same bytes (no copy).
  public func slice(_ range: Range<Int>) -> SharedDoubles {
    precondition(range.lowerBound >= 0 && range.upperBound <= count, "\(range) of \(count)")
    return SharedDoubles(storage, byteOffset: byteOffset + 8 * range.lowerBound, count: range.count)
  }

  /// The value at `index`.
  public subscript(index: Int) -> Double {
    precondition(index >= 0 && index < count, "index \(index) of \(count)")
    return withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8 * index, as: Double.self) }
  }

  /// Equal when their bytes are: bit for bit, so `0` and `-0` differ and a NaN equals
  /// itself, as a message's contents should.
  public static func == (a: SharedDoubles, b: SharedDoubles) -> Bool {
    a.count == b.count
      && a.withUnsafeBytes { x in b.withUnsafeBytes { y in x.elementsEqual(y) } }
  }
}
