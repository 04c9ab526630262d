import Foundation

/// A little-endian binary writer for messages between the master and workers: parameters
/// and gradients travel as raw doubles, not as text.
struct WireWriter {
  private(set) var bytes: [UInt8] = []

  init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

  mutating func u8(_ v: UInt8) { bytes.append(v) }

  mutating func u64(_ v: UInt64) {
    withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
  }

  mutating func i64(_ v: Int) { u64(UInt64(bitPattern: Int64(v))) }

  mutating func f64(_ v: Double) { u64(v.bitPattern) }

  mutating func doubles(_ v: [Double]) {
    u64(UInt64(v.count))
    v.withUnsafeBytes { raw in
      // Doubles are stored little-endian on every platform this runs on (x86-64, arm64).
      bytes.append(contentsOf: raw)
    }
  }

  mutating func blob(_ v: [UInt8]) {
    u64(UInt64(v.count))
    bytes.append(contentsOf: v)
  }

  mutating func string(_ s: String) { blob(Array(s.utf8)) }
}

/// Reads what `WireWriter` wrote; every read checks the remaining length.
struct WireReader {
  private let bytes: [UInt8]
  private var offset = 0

  init(_ bytes: [UInt8]) { self.bytes = bytes }

  var isAtEnd: Bool { offset == bytes.count }

  private mutating func take(_ n: Int) throws -> Range<Int> {
    guard n >= 0, offset + n <= bytes.count else {
      throw TrainingError(code: .mismatch, message: "truncated message (\(bytes.count) bytes)")
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
    let n = Int(try u64())
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
    let n = Int(try u64())
    return Array(bytes[try take(n)])
  }

  mutating func string() throws -> String { String(decoding: try blob(), as: UTF8.self) }
}
