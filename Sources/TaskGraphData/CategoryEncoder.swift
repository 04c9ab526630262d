#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Maps the bytes of categorical values to codes, in order of first appearance, without
/// building a `String` for a value already seen.
///
/// The codes are the reader's private numbering and follow the rows (and, for a shard, only
/// its rows). The level order a model uses, and so the first level that `--drop-first`
/// drops, is not this one: fitting sorts the values seen (see
/// `FittedPipeline.Column.Kind.categorical`), and replaying a pipeline maps codes to levels
/// by value.
///
/// An open-addressing hash table keyed by the raw bytes (FNV-1a, linear probing, at most half
/// full). A `String` is made once per distinct byte sequence, and that is when the bytes are
/// checked to be valid UTF-8 (so the check costs nothing for values already seen): invalid
/// bytes get the code `invalid` and are not added, rather than being repaired into a string
/// that another value may also become. Two byte sequences that are equal as `String`s
/// (canonically equivalent) share one code, exactly as if the table were keyed by strings.
struct CategoryEncoder {
  /// The code of bytes that are not valid UTF-8.
  static let invalid = Int32.min

  private struct Key {
    var start: Int
    var count: Int
    var hash: UInt64
    var code: Int32
  }

  /// The bytes of every key, back to back.
  private var arena: [UInt8] = []
  private var keys: [Key] = []
  /// Index into `keys`, or −1 for an empty slot; the count is a power of two.
  private var slots = [Int32](repeating: -1, count: 64)
  private var codeOfValue: [String: Int32] = [:]
  /// Values in order of first appearance (index = code).
  private(set) var values: [String] = []

  /// The code of the `n` bytes at `p`, adding them as a new value if unseen; `invalid` if they
  /// are not valid UTF-8.
  @inline(__always)
  mutating func code(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int32 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for k in 0..<n { h = (h ^ UInt64(p[k])) &* 0x0000_0100_0000_01b3 }
    let mask = slots.count - 1
    var i = Int(truncatingIfNeeded: h ^ (h >> 31)) & mask
    while true {
      let e = slots[i]
      if e < 0 { break }
      let key = keys[Int(e)]
      if key.hash == h && key.count == n && equal(key.start, p, n) { return key.code }
      i = (i + 1) & mask
    }
    return insert(p, n, hash: h, slot: i)
  }

  @inline(__always)
  private func equal(_ start: Int, _ p: UnsafePointer<UInt8>, _ n: Int) -> Bool {
    if n == 0 { return true }
    return arena.withUnsafeBufferPointer { arena in
      let q = arena.baseAddress! + start
      // Categories are mostly short: compare in place rather than call memcmp.
      if n <= 16 {
        for k in 0..<n where q[k] != p[k] { return false }
        return true
      }
      return memcmp(q, p, n) == 0
    }
  }

  private mutating func insert(_ p: UnsafePointer<UInt8>, _ n: Int, hash: UInt64, slot: Int)
    -> Int32
  {
    let bytes = UnsafeBufferPointer(start: p, count: n)
    guard let value = UTF8Text.decode(bytes) else { return Self.invalid }
    let code: Int32
    if let existing = codeOfValue[value] {
      code = existing
    } else {
      code = Int32(values.count)
      codeOfValue[value] = code
      values.append(value)
    }
    slots[slot] = Int32(keys.count)
    keys.append(Key(start: arena.count, count: n, hash: hash, code: code))
    arena.append(contentsOf: bytes)
    if 2 * keys.count > slots.count { grow() }
    return code
  }

  private mutating func grow() {
    slots = [Int32](repeating: -1, count: 2 * slots.count)
    let mask = slots.count - 1
    for (e, key) in keys.enumerated() {
      var i = Int(truncatingIfNeeded: key.hash ^ (key.hash >> 31)) & mask
      while slots[i] >= 0 { i = (i + 1) & mask }
      slots[i] = Int32(e)
    }
  }
}
