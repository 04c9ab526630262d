import Foundation

/// Writes files so that a reader sees either the old file or the whole new one: the bytes
/// go to a temporary name in the same directory, are flushed to disk, and are renamed over
/// the destination. A failure leaves the destination untouched and no temporary behind.
public enum AtomicFile {
  /// Writes `data` to `path` atomically.
  public static func write(_ data: Data, to path: String) throws {
    try write(to: path) { out in try data.withUnsafeBytes { try out.append($0) } }
  }

  /// Sequential writes to the temporary file of `write(to:body:)`.
  public struct Writer {
    let fd: Int32
    let path: String

    /// Appends `bytes`.
    public func append(_ bytes: UnsafeRawBufferPointer) throws {
      var off = 0
      while off < bytes.count {
        let n = Foundation.write(fd, bytes.baseAddress! + off, bytes.count - off)
        guard n > 0 else {
          throw TrainingError(code: .io, message: "\(path): write failed: \(errnoText())")
        }
        off += n
      }
    }
  }

  /// Writes whatever `body` appends to `path` atomically, without holding the whole
  /// file in memory.
  public static func write(to path: String, body: (Writer) throws -> Void) throws {
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent().path
    let tmp =
      "\(dir)/.\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o644)
    guard fd >= 0 else {
      throw TrainingError(
        code: .io, message: "\(path): cannot create a temporary file in '\(dir)': \(errnoText())")
    }
    var ok = false
    defer {
      if !ok { unlink(tmp) }
    }
    do {
      try body(Writer(fd: fd, path: path))
    } catch {
      close(fd)
      throw error
    }
    let synced = fsync(fd) == 0
    close(fd)
    guard synced else {
      throw TrainingError(code: .io, message: "\(path): write failed: \(errnoText())")
    }
    guard rename(tmp, path) == 0 else {
      throw TrainingError(code: .io, message: "\(path): cannot replace the file: \(errnoText())")
    }
    ok = true
    let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY)
    if dfd >= 0 {
      fsync(dfd)
      close(dfd)
    }
  }

  private static func errnoText() -> String { String(cString: strerror(errno)) }
}
