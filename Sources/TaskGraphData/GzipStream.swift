import CZlib

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// The decompressed bytes of a gzip file, produced as they are read: zlib's `inflate` writes
/// straight into the caller's buffer, and the compressed file is read in 1 MiB chunks, so
/// neither the compressed nor the decompressed file is held whole.
///
/// Like `gzread`, it reads every member of a multi-member file and ignores anything after the
/// last member that does not start with the gzip magic bytes. A damaged stream, or one that
/// ends before its last member does, is `DataError.Code.corruptGzip`.
///
/// The decompressed size is limited (see `DataLimits`): a stream that produces more than
/// `limit` bytes is stopped with `DataError.Code.tooLarge`, so that a decompression bomb (up
/// to about 1032:1 for deflate, and unbounded over many members) fails with an error that
/// states the size reached rather than exhausting memory or running for hours.
final class GzipStream: ByteReader {
  private static let inputSize = 1 << 20
  private let path: String
  private let fd: Int32
  private let input: UnsafeMutablePointer<UInt8>
  private var stream = z_stream()
  private var inputEnded = false
  private var finished = false
  private let limit: Int
  private let limitText: String
  /// Decompressed bytes produced so far.
  private var produced = 0

  /// Opens `path`, checking that it is a regular file that starts with the gzip magic bytes.
  /// More than `limit` decompressed bytes is an error that names the limit as `limitText`
  /// (e.g. `the 16 GB memory limit`).
  init(path: String, limit: Int = Int.max, limitText: String = "the limit") throws {
    fd = try InputFile.openRegular(path).fd
    self.path = path
    self.limit = limit
    self.limitText = limitText
    input = .allocate(capacity: Self.inputSize)
    // deinit runs from here on: the descriptor and the buffer are released on every throw.
    var magic: (UInt8, UInt8) = (0, 0)
    let n = withUnsafeMutableBytes(of: &magic) { pread(fd, $0.baseAddress, 2, 0) }
    guard n == 2, magic == (0x1f, 0x8b) else {
      throw DataError(.corruptGzip, "not a gzip file (bad magic bytes)", file: path)
    }
    // 15 + 16: a 32 KiB window and a gzip (not zlib) wrapper.
    let rc = inflateInit2_(&stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
    guard rc == Z_OK else {
      throw DataError(.corruptGzip, "cannot start decompressing (zlib error \(rc))", file: path)
    }
  }

  deinit {
    inflateEnd(&stream)
    input.deallocate()
    close(fd)
  }

  /// The size the last member's trailer gives (ISIZE: the length modulo 2³²), a capacity
  /// hint that is exact for a single-member file under 4 GiB.
  static func sizeHint(_ path: String) -> Int? {
    guard let size = try? InputFile.size(path), size >= 18 else { return nil }
    guard let tail = try? InputFile.read(path, offset: size - 4, count: 4), tail.count == 4
    else { return nil }
    return tail.reversed().reduce(0) { $0 << 8 | Int($1) }
  }

  func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
    guard let out = buffer.baseAddress, !finished else { return 0 }
    var written = 0
    while written < buffer.count && !finished {
      if stream.avail_in == 0 { try refill() }
      if stream.avail_in == 0 && inputEnded {
        throw DataError(
          .corruptGzip, "corrupted gzip data: unexpected end of the compressed stream",
          file: path)
      }
      let space = min(buffer.count - written, Int(UInt32.max))
      stream.next_out = (out + written).assumingMemoryBound(to: UInt8.self)
      stream.avail_out = UInt32(space)
      let rc = CZlib.inflate(&stream, Z_NO_FLUSH)
      written += space - Int(stream.avail_out)
      if produced + written > limit {
        throw DataError(
          .tooLarge,
          "the decompressed data exceeds \(limitText): stopped after "
            + "\(DataLimits.bytes(produced + written)) (\(produced + written) bytes) from a "
            + "\(DataLimits.bytes((try? InputFile.size(path)) ?? 0)) file",
          file: path)
      }
      switch rc {
      case Z_OK, Z_BUF_ERROR:
        continue
      case Z_STREAM_END:
        try nextMember()
      default:
        let reason = stream.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
        throw DataError(.corruptGzip, "corrupted gzip data: \(reason)", file: path)
      }
    }
    produced += written
    return written
  }

  /// After a member ends: continues with the next one if the magic bytes follow.
  private func nextMember() throws {
    if stream.avail_in < 2 { try refill() }
    if stream.avail_in >= 2 && stream.next_in[0] == 0x1f && stream.next_in[1] == 0x8b {
      inflateReset(&stream)
    } else {
      finished = true
    }
  }

  /// Moves the unread input to the front of the buffer and reads more after it.
  private func refill() throws {
    if inputEnded { return }
    let kept = Int(stream.avail_in)
    if kept > 0 && stream.next_in != input { input.update(from: stream.next_in, count: kept) }
    var filled = kept
    while filled < Self.inputSize {
      let n = systemRead(fd, input + filled, Self.inputSize - filled)
      if n < 0 {
        if errno == EINTR { continue }
        throw InputFile.ioError(path, "cannot read")
      }
      if n == 0 {
        inputEnded = true
        break
      }
      filled += n
    }
    stream.next_in = input
    stream.avail_in = UInt32(filled)
  }
}

/// `read(2)`, named apart from `GzipStream.read(into:)`.
@inline(__always)
private func systemRead(_ fd: Int32, _ p: UnsafeMutablePointer<UInt8>, _ n: Int) -> Int {
  #if canImport(Glibc)
    Glibc.read(fd, p, n)
  #elseif canImport(Musl)
    Musl.read(fd, p, n)
  #else
    Darwin.read(fd, p, n)
  #endif
}
