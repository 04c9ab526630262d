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

  /// Opens `path` for reading, refusing anything but a regular file (a directory, a FIFO, a
  /// device, a socket) with `DataError.Code.notARegularFile` (see `RegularFile.open`).
  /// Returns the descriptor and the file's size.
  static func openRegular(_ path: String) throws -> (fd: Int32, size: Int) {
    do {
      return try RegularFile.open(path)
    } catch .cannotOpen(let e) {
      throw ioError(path, "cannot open", errno: e)
    } catch .cannotStat(let e) {
      throw ioError(path, "cannot stat", errno: e)
    } catch .notRegular(let mode) {
      let kind: String
      switch mode {
      case S_IFDIR: kind = "a directory"
      case S_IFIFO: kind = "a FIFO (named pipe)"
      case S_IFCHR: kind = "a character device"
      case S_IFBLK: kind = "a block device"
      case S_IFSOCK: kind = "a socket"
      default: kind = "a special file"
      }
      throw DataError(
        .notARegularFile, "not a regular file (it is \(kind)); expected a data file", file: path)
    }
  }

  /// The file's size in bytes.
  /// - Throws: `DataError` (`io`, or `notARegularFile`).
  static func size(_ path: String) throws -> Int {
    let (fd, size) = try openRegular(path)
    close(fd)
    return size
  }

  /// `count` bytes of the file from `offset`, mapped from the page cache rather than copied
  /// (a 800 MB array is then read at memory speed, as `np.load` reads it); the mapping lasts
  /// as long as the returned object. Fewer bytes than `count` in the file is
  /// `DataError.Code.truncated` (by `short`).
  static func map(
    _ path: String, offset: Int, count: Int, short: (Int) -> DataError
  ) throws -> MappedBytes {
    let (fd, size) = try openRegular(path)
    defer { close(fd) }
    guard offset >= 0, count >= 0, offset <= size, count <= size - offset else {
      throw short(max(0, size - offset))
    }
    if count == 0 {
      return MappedBytes(mapping: nil, length: 0, bytes: UnsafeRawPointer(bitPattern: 8)!)
    }
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let start = offset / page * page
    let length = offset - start + count
    guard let base = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, off_t(start)),
      base != MAP_FAILED
    else {
      throw ioError(path, "cannot map", errno: errno)
    }
    _ = madvise(base, length, MADV_SEQUENTIAL)
    return MappedBytes(
      mapping: base, length: length, bytes: UnsafeRawPointer(base) + (offset - start))
  }

  /// All bytes of the file; a `.gz` file is decompressed. A file, or decompressed data, larger
  /// than `limits.memoryBytes` is `DataError.Code.tooLarge`.
  static func readAll(_ path: String, limits: DataLimits = .defaults) throws -> [UInt8] {
    if isGzip(path) { return try inflate(path, limits: limits) }
    return try read(path, offset: 0, count: Int.max, limit: limits.memoryBytes)
  }

  /// Up to `count` bytes from `offset` (fewer at the end of the file). More than `limit` bytes
  /// is `DataError.Code.tooLarge`.
  static func read(_ path: String, offset: Int, count: Int, limit: Int = Int.max) throws
    -> [UInt8]
  {
    let (fd, size) = try openRegular(path)
    defer { close(fd) }
    let total = max(0, min(count, size - offset))
    if total > limit {
      throw DataError(
        .tooLarge,
        "the file holds \(DataLimits.bytes(total)) (\(total) bytes), more than the "
          + "\(DataLimits.bytes(limit)) memory limit for a file read whole", file: path)
    }
    do {
      return try RegularFile.read(fd, offset: offset, count: total)
    } catch {
      throw ioError(path, "cannot read", errno: error.errno)
    }
  }

  /// Decompresses a gzip file (all members) into one buffer.
  ///
  /// The buffer is sized from the gzip trailer and filled by zlib directly, so a single-member
  /// file is decompressed without a copy. A damaged or truncated stream, or a file without the
  /// gzip magic bytes, is reported as `DataError.Code.corruptGzip`; decompressed data beyond
  /// `limits.memoryBytes` (a decompression bomb, or data too large to hold) as `tooLarge`.
  static func inflate(_ path: String, limits: DataLimits = .defaults) throws -> [UInt8] {
    let limit = limits.memoryBytes
    let stream = try GzipStream(path: path, limit: limit, limitText: limits.memoryText)
    // One byte more than the hint, so that reaching the end is seen without a second buffer.
    // The hint is capped at deflate's largest ratio (about 1032:1) in case the trailer is bad,
    // and at the limit.
    let ratio = 1032 * ((try? size(path)) ?? 0)
    let capacity = max(1 << 16, min(ratio, limit, GzipStream.sizeHint(path) ?? 0) + 1)
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
  static func ioError(_ path: String, _ what: String, errno e: Int32 = errno) -> DataError {
    let reason = String(cString: strerror(e))
    return DataError(.io, "\(what) the file: \(reason)", file: path)
  }
}

/// Reading a regular file whole, for every target that reads one (data files here, model
/// files in TaskGraphTraining); each caller words the failures in its own terms.
package enum RegularFile {
  /// Why a path could not be opened as a regular file.
  package enum Failure: Error {
    /// `open(2)` failed with this errno.
    case cannotOpen(Int32)
    /// `fstat(2)` failed with this errno.
    case cannotStat(Int32)
    /// The path is no regular file: its `st_mode & S_IFMT`.
    case notRegular(mode_t)
  }

  /// A read failed with this errno.
  package struct ReadFailure: Error {
    package var errno: Int32
  }

  /// Opens `path` read-only and checks that it is a regular file. `O_NONBLOCK` keeps the open
  /// from waiting for a writer when `path` is a FIFO; it has no effect on reading a regular
  /// file. The caller closes the descriptor.
  package static func open(_ path: String) throws(Failure) -> (fd: Int32, size: Int) {
    #if canImport(Glibc)
      let fd = Glibc.open(path, O_RDONLY | O_NONBLOCK)
    #elseif canImport(Musl)
      let fd = Musl.open(path, O_RDONLY | O_NONBLOCK)
    #else
      let fd = Darwin.open(path, O_RDONLY | O_NONBLOCK)
    #endif
    guard fd >= 0 else { throw .cannotOpen(errno) }
    var st = stat()
    guard fstat(fd, &st) == 0 else {
      let e = errno
      close(fd)
      throw .cannotStat(e)
    }
    guard st.st_mode & S_IFMT == S_IFREG else {
      close(fd)
      throw .notRegular(st.st_mode & S_IFMT)
    }
    return (fd, Int(st.st_size))
  }

  /// Up to `count` bytes of `fd` from `offset` (fewer at the end of the file).
  package static func read(_ fd: Int32, offset: Int, count: Int) throws(ReadFailure) -> [UInt8] {
    var failure: Int32?
    let bytes = [UInt8](unsafeUninitializedCapacity: count) { raw, done in
      while done < count {
        let n = pread(fd, raw.baseAddress! + done, count - done, off_t(offset + done))
        if n < 0 {
          if errno == EINTR { continue }
          failure = errno
          return
        }
        if n == 0 { break }
        done += n
      }
    }
    if let failure { throw ReadFailure(errno: failure) }
    return bytes
  }
}

/// Bytes of a file mapped read-only (see `InputFile.map`), unmapped when released. The file
/// must not change while they are read.
final class MappedBytes: @unchecked Sendable {
  // Unchecked Sendable: the bytes are never written, and the mapping is removed only in
  // deinit, when nothing else holds it.
  private let mapping: UnsafeMutableRawPointer?
  private let length: Int
  /// The first byte asked for.
  let bytes: UnsafeRawPointer

  fileprivate init(mapping: UnsafeMutableRawPointer?, length: Int, bytes: UnsafeRawPointer) {
    self.mapping = mapping
    self.length = length
    self.bytes = bytes
  }

  deinit { if let mapping { munmap(mapping, length) } }
}
