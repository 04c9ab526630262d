import CZlib
import Foundation
import TaskGraph
import TaskGraphData
import TaskGraphLinalg

/// A worker's parsed shard, kept on disk so that a restarted worker reloads it instead of
/// parsing its byte range of the source again.
///
/// One file per shard, `shard-<i>of<n>-<key>.bin`, where the key is a fingerprint of the
/// data file (the job's fingerprint plus this file's size and modification time), the
/// fitted preprocessing, the precision and the shard. The file holds a header (magic,
/// scalar size, rows, columns, the seconds the parse took, the key, the rows dropped for
/// missing values), the row-major matrix,
/// the labels as Float64, and a CRC-32 of all of it; it is written atomically. A file that
/// fails any check is reported, removed and rebuilt.
struct ShardCache {
  /// The directory holding the shard files.
  let directory: String

  static let magic: [UInt8] = Array("TGSHARD2".utf8)
  static let headerSize = 56

  /// A loaded shard.
  struct Entry<T: BLASScalar> {
    var x: Matrix<T>
    var y: [Double]
    /// Seconds the original parse took.
    var parseSeconds: Double
    /// Rows of the shard dropped for missing values.
    var dropped: Int = 0
  }

  /// What `load` found.
  enum Lookup<T: BLASScalar> {
    case hit(Entry<T>)
    case missing
    /// The file exists but is damaged or of something else; the reason is for a warning.
    case invalid(String)
  }

  /// The cache key of `shard` of the job's data as this worker sees it at `path`.
  static func key(job: JobDescription, path: String, shard: Shard) -> UInt64 {
    struct Input: Encodable {
      var data: String
      var size: Int64
      var modified: Double
      /// The hash of the pipeline's JSON (hashing its bytes, not encoding a wide
      /// pipeline again, keeps the key cheap for a million features).
      var pipeline: UInt64
      var precision: Precision
      var shard: Shard
      /// Nil for rows (keys from before partitions existed stay the same).
      var partition: Partition?
    }
    let attributes = try? FileManager.default.attributesOfItem(atPath: path)
    var f = FNV1a64()
    f.update(job.pipelineJSON)
    let pipelineHash = f.value
    let input = Input(
      data: job.dataFingerprint, size: (attributes?[.size] as? NSNumber)?.int64Value ?? -1,
      modified: (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0,
      pipeline: pipelineHash, precision: job.precision, shard: shard,
      partition: job.partition == .rows ? nil : job.partition)
    return UInt64(Fingerprint.of(input), radix: 16) ?? 0
  }

  /// The file of `shard` with `key`.
  func path(shard: Shard, key: UInt64) -> String {
    let hex = String(key, radix: 16)
    return "\(directory)/shard-\(shard.index + 1)of\(shard.count)-\(hex).bin"
  }

  /// Writes the shard atomically.
  func store<T: BLASScalar>(_ entry: Entry<T>, shard: Shard, key: UInt64) throws {
    try FileManager.default.createDirectory(
      atPath: directory, withIntermediateDirectories: true)
    var header = Self.magic
    func put(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { header += $0 } }
    put(UInt64(MemoryLayout<T>.size))
    put(UInt64(entry.x.rows))
    put(UInt64(entry.x.cols))
    put(entry.parseSeconds.bitPattern)
    put(key)
    put(UInt64(entry.dropped))
    var crc = CRC32()
    try AtomicFile.write(to: path(shard: shard, key: key)) { out in
      try header.withUnsafeBytes { b in
        crc.update(b)
        try out.append(b)
      }
      try entry.x.withUnsafeBufferPointer { b in
        let raw = UnsafeRawBufferPointer(b)
        crc.update(raw)
        try out.append(raw)
      }
      try entry.y.withUnsafeBytes { b in
        crc.update(b)
        try out.append(b)
      }
      try withUnsafeBytes(of: UInt64(crc.value).littleEndian) { try out.append($0) }
    }
  }

  /// Reads the shard if its file exists and every check passes.
  func load<T: BLASScalar>(shard: Shard, key: UInt64, as: T.Type = T.self) -> Lookup<T> {
    let file = path(shard: shard, key: key)
    let fd = open(file, O_RDONLY)
    guard fd >= 0 else { return .missing }
    defer { close(fd) }
    var crc = CRC32()
    func readExactly(_ buffer: UnsafeMutableRawBufferPointer) -> Bool {
      var off = 0
      while off < buffer.count {
        let n = read(fd, buffer.baseAddress! + off, buffer.count - off)
        guard n > 0 else { return false }
        off += n
      }
      return true
    }
    var header = [UInt8](repeating: 0, count: Self.headerSize)
    guard header.withUnsafeMutableBytes(readExactly) else {
      return .invalid("\(file): truncated header")
    }
    crc.update(header)
    guard Array(header[0..<8]) == Self.magic else { return .invalid("\(file): not a shard file") }
    func field(_ i: Int) -> UInt64 {
      header.withUnsafeBytes {
        UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))
      }
    }
    guard field(1) == UInt64(MemoryLayout<T>.size) else {
      return .invalid("\(file): stored with another precision")
    }
    guard field(5) == key else { return .invalid("\(file): stored for other data") }
    let rows = Int(field(2))
    let cols = Int(field(3))
    var st = stat()
    let expected =
      Self.headerSize + rows * cols * MemoryLayout<T>.size + rows * MemoryLayout<Double>.size + 8
    guard fstat(fd, &st) == 0, Int(st.st_size) == expected else {
      return .invalid("\(file): size \(st.st_size) bytes, expected \(expected)")
    }
    var x = Matrix<T>(rows: rows, cols: cols)
    let xOK = x.withUnsafeMutableBufferPointer { b in
      let raw = UnsafeMutableRawBufferPointer(b)
      guard readExactly(raw) else { return false }
      crc.update(UnsafeRawBufferPointer(raw))
      return true
    }
    var y = [Double](repeating: 0, count: rows)
    let yOK = y.withUnsafeMutableBytes { b in
      guard readExactly(b) else { return false }
      crc.update(UnsafeRawBufferPointer(b))
      return true
    }
    var trailer: UInt64 = 0
    let tOK = withUnsafeMutableBytes(of: &trailer, readExactly)
    guard xOK, yOK, tOK else { return .invalid("\(file): truncated") }
    guard UInt64(littleEndian: trailer) == UInt64(crc.value) else {
      return .invalid("\(file): checksum mismatch")
    }
    return .hit(
      Entry(x: x, y: y, parseSeconds: Double(bitPattern: field(4)), dropped: Int(field(6))))
  }

  /// Removes the file of `shard` with `key`, if any.
  func remove(shard: Shard, key: UInt64) {
    unlink(path(shard: shard, key: key))
  }
}

/// CRC-32 (zlib's), fed in pieces.
struct CRC32 {
  private(set) var value: UInt32 = 0

  mutating func update(_ bytes: UnsafeRawBufferPointer) {
    guard var p = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
    var left = bytes.count
    var crc = UInt(value)
    while left > 0 {
      let n = min(left, 1 << 30)
      crc = CZlib.crc32(crc, p, UInt32(n))
      p += n
      left -= n
    }
    value = UInt32(crc)
  }

  mutating func update(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes { update($0) }
  }
}
