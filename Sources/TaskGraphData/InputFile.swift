#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Raw byte access to an input file: whole-file reads, positioned reads for shards, and
/// gzip decompression (see `GzipStream`).
enum InputFile {
  /// Whether `path` names a gzip file (by its extension).
  static func isGzip(_ path: String) -> Bool { path.lowercased().hasSuffix(".gz") }

  /// The file's size in bytes.
  static func size(_ path: String) throws -> Int {
    var st = stat()
    guard stat(path, &st) == 0 else { throw ioError(path, "cannot open") }
    return Int(st.st_size)
  }

  /// All bytes of the file; a `.gz` file is decompressed.
  static func readAll(_ path: String) throws -> [UInt8] {
    if isGzip(path) { return try inflate(path) }
    return try read(path, offset: 0, count: Int.max)
  }

  /// Up to `count` bytes from `offset` (fewer at the end of the file).
  static func read(_ path: String, offset: Int, count: Int) throws -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw ioError(path, "cannot open") }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw ioError(path, "cannot stat") }
    let total = max(0, min(count, Int(st.st_size) - offset))
    return try [UInt8](unsafeUninitializedCapacity: total) { raw, done in
      while done < total {
        let n = pread(fd, raw.baseAddress! + done, total - done, off_t(offset + done))
        if n < 0 {
          if errno == EINTR { continue }
          throw ioError(path, "cannot read")
        }
        if n == 0 { break }
        done += n
      }
    }
  }

  /// Decompresses a gzip file (all members) into one buffer.
  ///
  /// The buffer is sized from the gzip trailer and filled by zlib directly, so a single-member
  /// file is decompressed without a copy. A damaged or truncated stream, or a file without the
  /// gzip magic bytes, is reported as `DataError.Code.corruptGzip`.
  static func inflate(_ path: String) throws -> [UInt8] {
    let stream = try GzipStream(path: path)
    // One byte more than the hint, so that reaching the end is seen without a second buffer.
    // The hint is capped at deflate's largest ratio (about 1032:1) in case the trailer is bad.
    let limit = 1032 * ((try? size(path)) ?? 0)
    let capacity = max(1 << 16, min(limit, GzipStream.sizeHint(path) ?? 0) + 1)
    var out = try [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
      count = try stream.read(into: UnsafeMutableRawBufferPointer(buffer))
    }
    if out.count < capacity { return out }
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
      let n = try chunk.withUnsafeMutableBytes { try stream.read(into: $0) }
      if n == 0 { return out }
      out.append(contentsOf: chunk[0..<n])
    }
  }

  /// Writes `bytes` to `path`, replacing its contents.
  static func writeFile(_ bytes: [UInt8], to path: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw ioError(path, "cannot create") }
    defer { close(fd) }
    var done = 0
    try bytes.withUnsafeBytes { raw in
      while done < raw.count {
        let n = write(fd, raw.baseAddress! + done, raw.count - done)
        if n < 0 {
          if errno == EINTR { continue }
          throw ioError(path, "cannot write")
        }
        done += n
      }
    }
  }

  /// An I/O error naming the file and the system's reason (`errno`).
  static func ioError(_ path: String, _ what: String) -> DataError {
    let reason = String(cString: strerror(errno))
    return DataError(.io, "\(what) the file: \(reason)", file: path)
  }
}
