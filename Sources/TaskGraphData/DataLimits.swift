import Foundation

/// Limits on the memory a data file can make the reader allocate.
///
/// Sizes that a file only declares or implies are checked against these before anything of
/// that size is allocated: the shape in a `.npy` header, the largest LIBSVM feature index (the
/// dense width), the output matrix after one-hot encoding, the column store as rows are read,
/// a file read whole, and the decompressed size of a gzip file. A file over a limit is a
/// `DataError` with code `tooLarge` whose message states the size, instead of an allocation
/// failure or the process being killed for running out of memory.
public struct DataLimits: Sendable, Equatable {
  /// The most bytes one in-memory structure may take: the output matrix, the column store,
  /// the dense LIBSVM matrix, a file read whole or decompressed into memory. By default the
  /// machine's physical memory (`ProcessInfo.physicalMemory`): a structure larger than that
  /// cannot be held at all.
  public var memoryBytes: Int
  /// The most bytes a gzip file may decompress to when it is streamed (a whole CSV file, never
  /// held in memory). By default 4 × the physical memory: the text of a CSV file is at least
  /// as large as the column store it becomes for all but very wide numeric values, so a
  /// stream beyond that is a decompression bomb, not data that could be read. (A gzip file
  /// decompressed into memory is limited by `memoryBytes`.)
  public var decompressedBytes: Int

  /// Limits from their parts.
  public init(memoryBytes: Int, decompressedBytes: Int) {
    precondition(memoryBytes > 0 && decompressedBytes > 0, "limits must be positive")
    self.memoryBytes = memoryBytes
    self.decompressedBytes = decompressedBytes
  }

  /// The machine's physical memory in bytes (`Int.max` if unknown).
  public static var physicalMemory: Int {
    let bytes = ProcessInfo.processInfo.physicalMemory
    return bytes == 0 ? Int.max : Int(clamping: bytes)
  }

  /// `memoryBytes` = physical memory, `decompressedBytes` = 4 × physical memory.
  public static var defaults: DataLimits {
    let memory = physicalMemory
    return DataLimits(
      memoryBytes: memory,
      decompressedBytes: memory.multipliedReportingOverflow(by: 4).overflow
        ? Int.max : 4 * memory)
  }

  /// `"the 16 GB memory limit (the physical memory)"`, for messages.
  var memoryText: String {
    let physical = memoryBytes == Self.physicalMemory ? " (the physical memory)" : ""
    return "the \(Self.bytes(memoryBytes)) memory limit\(physical)"
  }

  /// `"the 64 GB limit on decompressed data"`, for messages.
  var decompressedText: String {
    let physical =
      decompressedBytes == Self.defaults.decompressedBytes ? " (4 × the physical memory)" : ""
    return "the \(Self.bytes(decompressedBytes)) limit on decompressed data\(physical)"
  }

  /// A byte count in decimal units with three significant digits: `808 GB`, `1.5 MB`,
  /// `512 bytes`.
  static func bytes(_ count: Int) -> String {
    if count < 1000 { return count == 1 ? "1 byte" : "\(count) bytes" }
    let units = ["kB", "MB", "GB", "TB", "PB", "EB"]
    var value = Double(count) / 1000
    var unit = 0
    while value >= 999.5 && unit < units.count - 1 {
      value /= 1000
      unit += 1
    }
    let digits = value >= 99.95 ? 0 : value >= 9.995 ? 1 : 2
    var text = String(format: "%.\(digits)f", value)
    if text.contains(".") {
      while text.hasSuffix("0") { text.removeLast() }
      if text.hasSuffix(".") { text.removeLast() }
    }
    return "\(text) \(units[unit])"
  }

  /// `a × b × c` or nil if it overflows `Int`.
  static func product(_ factors: Int...) -> Int? {
    var result = 1
    for f in factors {
      let (p, overflow) = result.multipliedReportingOverflow(by: f)
      if overflow { return nil }
      result = p
    }
    return result
  }
}
