import Foundation
import TaskGraph

/// A little-endian binary writer for messages between the master and workers: parameters
/// and gradients travel as raw doubles, not as text.
///
/// The message is a ``Payload``: a vector of at least ``WireWriter/partThreshold`` doubles
/// becomes a part of its own, the array itself rather than a copy, so sending parameters
/// or a gradient copies nothing here (and nothing at all in process).
struct WireWriter {
  /// Vectors with at least this many doubles travel as parts of their own.
  static let partThreshold = 512

  private var parts: [Payload.Part] = []
  private var bytes: [UInt8] = []

  init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

  /// What has been written.
  var payload: Payload {
    Payload(parts: bytes.isEmpty ? parts : parts + [.bytes(bytes)])
  }

  mutating func u8(_ v: UInt8) { bytes.append(v) }

  mutating func u64(_ v: UInt64) {
    withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
  }

  mutating func i64(_ v: Int) { u64(UInt64(bitPattern: Int64(v))) }

  mutating func f64(_ v: Double) { u64(v.bitPattern) }

  mutating func doubles(_ v: [Double]) {
    u64(UInt64(v.count))
    if v.count >= Self.partThreshold {
      parts.append(.bytes(bytes))
      parts.append(.doubles(v))
      bytes = []
      bytes.reserveCapacity(64)
    } else {
      v.withUnsafeBytes { raw in
        // Doubles are stored little-endian on every platform this runs on (x86-64, arm64).
        bytes.append(contentsOf: raw)
      }
    }
  }

  /// Writes `v` as `doubles(_:)` writes an array, as a part of its own (itself, not a
  /// copy) when it is long enough.
  mutating func doubles(_ v: SharedDoubles) {
    if let array = v.wholeArray { return doubles(array) }
    guard v.count >= Self.partThreshold else { return doubles(v.array) }
    u64(UInt64(v.count))
    parts.append(.bytes(bytes))
    parts.append(.sharedDoubles(v))
    bytes = []
    bytes.reserveCapacity(64)
  }

  mutating func blob(_ v: [UInt8]) {
    u64(UInt64(v.count))
    bytes.append(contentsOf: v)
  }

  mutating func string(_ s: String) { blob(Array(s.utf8)) }
}

/// Reads what `WireWriter` wrote; every read checks the remaining length. A vector that
/// travels as a part of its own is returned as that part's array, without a copy; one
/// written inline (or joined into the bytes by whatever carried the message) is copied out.
struct WireReader {
  private let parts: [Payload.Part]
  /// The index of the part after the one being read.
  private var next = 0
  /// The part of bytes being read.
  private var bytes: [UInt8] = []
  private var offset = 0

  init(_ payload: Payload) { parts = payload.parts }

  init(_ bytes: [UInt8]) { self.init(Payload(bytes)) }

  var isAtEnd: Bool { offset == bytes.count && parts[next...].allSatisfy { $0.count == 0 } }

  /// Moves on to the next part of bytes when the current one is read to its end.
  private mutating func refill() {
    while offset == bytes.count, next < parts.count, case .bytes(let b) = parts[next] {
      bytes = b
      offset = 0
      next += 1
    }
  }

  private mutating func take(_ n: Int) throws -> Range<Int> {
    refill()
    guard n >= 0, n <= bytes.count - offset else {
      throw TrainingError(
        code: .mismatch,
        message: "truncated message (\(Payload(parts: parts).count) bytes in \(parts.count) parts)")
    }
    defer { offset += n }
    return offset..<(offset + n)
  }

  mutating func u8() throws -> UInt8 { bytes[try take(1).lowerBound] }

  mutating func u64() throws -> UInt64 {
    let r = try take(8)
    var v: UInt64 = 0
    for (k, i) in r.enumerated() { v |= UInt64(bytes[i]) << (8 * UInt64(k)) }
    return v
  }

  mutating func i64() throws -> Int { Int(Int64(bitPattern: try u64())) }

  mutating func f64() throws -> Double { Double(bitPattern: try u64()) }

  mutating func doubles() throws -> [Double] {
    let count = try u64()
    if let part = wholePart(count) { return part.array }
    return try inlineDoubles(count)
  }

  /// A vector as `doubles()` reads it, except that one travelling as a part of its own is
  /// returned as it is: an array, or doubles left in a received message's bytes.
  mutating func sharedDoubles() throws -> SharedDoubles {
    let count = try u64()
    if let part = wholePart(count) { return part }
    return SharedDoubles(try inlineDoubles(count))
  }

  /// The next part, taken, if it is a part of doubles holding the `count` doubles to read.
  private mutating func wholePart(_ count: UInt64) -> SharedDoubles? {
    refill()
    guard offset == bytes.count, next < parts.count, count <= UInt64(Int.max / 8),
      parts[next].count == Int(count) * 8
    else { return nil }
    switch parts[next] {
    case .doubles(let d):
      next += 1
      return SharedDoubles(d)
    case .sharedDoubles(let d):
      next += 1
      return d
    case .bytes: return nil
    }
  }

  /// `count` doubles written inline in the bytes, copied out.
  private mutating func inlineDoubles(_ count: UInt64) throws -> [Double] {
    guard count <= UInt64(Int.max / 8) else {
      throw TrainingError(code: .mismatch, message: "a vector of \(count) doubles")
    }
    let n = Int(count)
    let r = try take(n * 8)
    return [Double](unsafeUninitializedCapacity: n) { buf, count in
      bytes.withUnsafeBytes { raw in
        UnsafeMutableRawBufferPointer(buf).copyMemory(
          from: UnsafeRawBufferPointer(rebasing: raw[r]))
      }
      count = n
    }
  }

  mutating func blob() throws -> [UInt8] {
    let count = try u64()
    guard let n = Int(exactly: count) else {
      throw TrainingError(code: .mismatch, message: "a blob of \(count) bytes")
    }
    return Array(bytes[try take(n)])
  }

  mutating func string() throws -> String { String(decoding: try blob(), as: UTF8.self) }
}
