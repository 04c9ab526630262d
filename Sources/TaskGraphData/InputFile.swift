import CZlib

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Raw byte access to an input file: whole-file reads, positioned reads for shards, and
/// transparent gzip decompression.
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
    var out = [UInt8](repeating: 0, count: total)
    var done = 0
    try out.withUnsafeMutableBytes { raw in
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
    if done < total { out.removeSubrange(done...) }
    return out
  }

  /// Decompresses a gzip file (all members) with zlib's `gz*` API.
  ///
  /// zlib passes non-gzip input through unchanged, so the magic bytes are checked first;
  /// a damaged or truncated stream is reported as `DataError.Code.corruptGzip`.
  static func inflate(_ path: String) throws -> [UInt8] {
    let head = try read(path, offset: 0, count: 2)
    guard head == [0x1f, 0x8b] else {
      throw DataError(.corruptGzip, "not a gzip file (bad magic bytes)", file: path)
    }
    guard let gz = gzopen(path, "rb") else { throw ioError(path, "cannot open") }
    var closed = false
    defer { if !closed { gzclose(gz) } }
    gzbuffer(gz, 1 << 18)
    let compressed = (try? size(path)) ?? 0
    var out: [UInt8] = []
    out.reserveCapacity(max(1 << 16, compressed * 6))
    let chunk = 1 << 20
    var scratch = [UInt8](repeating: 0, count: chunk)
    while true {
      let n = scratch.withUnsafeMutableBytes { gzread(gz, $0.baseAddress, UInt32(chunk)) }
      if n < 0 { throw gzipError(gz, path) }
      if n == 0 { break }
      out.append(contentsOf: scratch[0..<Int(n)])
    }
    var errnum: Int32 = 0
    _ = gzerror(gz, &errnum)
    if errnum != Z_OK && errnum != Z_STREAM_END { throw gzipError(gz, path) }
    closed = true
    let rc = gzclose(gz)
    if rc != Z_OK {
      throw DataError(
        .corruptGzip, "corrupted gzip data: unexpected end of the compressed stream", file: path)
    }
    return out
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

  private static func gzipError(_ gz: gzFile, _ path: String) -> DataError {
    var errnum: Int32 = 0
    let text = gzerror(gz, &errnum).map { String(cString: $0) } ?? "unknown error"
    return DataError(.corruptGzip, "corrupted gzip data: \(text)", file: path)
  }

  private static func ioError(_ path: String, _ what: String) -> DataError {
    let reason = String(cString: strerror(errno))
    return DataError(.io, "\(what) the file: \(reason)", file: path)
  }
}
