#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// A sequential source of bytes: a plain file from an offset, a gzip stream, or either one
/// read ahead on another thread.
protocol ByteReader {
  /// Fills `buffer` from the start with the next bytes and returns how many were written:
  /// fewer than `buffer.count` only at the end of the input, 0 once it is reached.
  mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// The bytes of a plain file from an offset on, read with `pread`.
final class FileReader: ByteReader {
  private let path: String
  private let fd: Int32
  private var offset: Int

  /// Opens `path` (a regular file) for reading from byte `offset`.
  init(path: String, offset: Int = 0) throws {
    fd = try InputFile.openRegular(path).fd
    self.path = path
    self.offset = offset
  }

  deinit { close(fd) }

  func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
    var done = 0
    while done < buffer.count {
      let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset))
      if n < 0 {
        if errno == EINTR { continue }
        throw InputFile.ioError(path, "cannot read")
      }
      if n == 0 { break }
      done += n
      offset += n
    }
    return done
  }
}
