import Logging

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The embedded checkpoint store: one file per checkpoint in a local directory,
/// `name-<epoch>.ckpt`, written atomically and checksummed.
///
/// File format: a 32-byte header — magic `TGCKPT01` (8 bytes), epoch (UInt64 LE), payload
/// length (UInt64 LE), FNV-1a 64 of epoch, length and payload (UInt64 LE) — followed by the
/// payload. A save writes a temporary file, fsyncs it, renames it into place and fsyncs the
/// directory, so a crash leaves either the old set of checkpoints or the new one. After a
/// save only the newest `keep` checkpoints of that name remain.
public struct DirectoryCheckpointStore: CheckpointStore {
  /// The directory holding the checkpoint files.
  public let directory: String
  /// How many checkpoints per name are kept.
  public let keep: Int
  private let logger: Logger

  private static let magic: [UInt8] = Array("TGCKPT01".utf8)
  private static let headerSize = 32

  /// Creates a store in `directory` (created if missing) keeping the last `keep` (≥ 1)
  /// checkpoints per name.
  public init(
    directory: String, keep: Int = 3, logger: Logger = Logger(label: "taskgraph.checkpoint")
  )
    throws
  {
    precondition(keep >= 1, "keep must be at least 1")
    self.directory = directory
    self.keep = keep
    self.logger = logger
    if mkdir(directory, 0o755) != 0 && errno != EEXIST {
      throw CheckpointError(path: directory, operation: "mkdir", errno: errno)
    }
  }

  /// Writes `checkpoint` atomically as `name-<epoch>.ckpt`, then prunes to the newest `keep`.
  public func save(_ checkpoint: Checkpoint, name: String) async throws {
    precondition(Self.isValidName(name), "checkpoint name must be non-empty, without '/' or '-'")
    let bytes = Self.encode(checkpoint)
    let final = path(name: name, epoch: checkpoint.epoch)
    let temp = "\(directory)/.\(name)-\(checkpoint.epoch).\(UInt64.random(in: 0...UInt64.max)).tmp"
    let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw CheckpointError(path: temp, operation: "open", errno: errno) }
    var ok = false
    defer {
      if !ok { unlink(temp) }
    }
    do {
      defer { close(fd) }
      var offset = 0
      while offset < bytes.count {
        let n = bytes.withUnsafeBytes { buf in
          write(fd, buf.baseAddress! + offset, buf.count - offset)
        }
        if n < 0 {
          if errno == EINTR { continue }
          throw CheckpointError(path: temp, operation: "write", errno: errno)
        }
        offset += n
      }
      guard fsync(fd) == 0 else {
        throw CheckpointError(path: temp, operation: "fsync", errno: errno)
      }
    }
    guard rename(temp, final) == 0 else {
      throw CheckpointError(path: final, operation: "rename", errno: errno)
    }
    ok = true
    syncDirectory()
    try prune(name: name)
  }

  /// The newest checkpoint of `name` whose header and checksum verify; corrupted newer ones are skipped, logged and listed in `warnings`.
  public func latest(name: String) async throws -> (checkpoint: Checkpoint, warnings: [String])? {
    var warnings: [String] = []
    for epoch in try listEpochs(name: name).reversed() {
      let file = path(name: name, epoch: epoch)
      switch Self.decode(try readFile(file)) {
      case .success(let checkpoint) where checkpoint.epoch == epoch:
        return (checkpoint, warnings)
      case .success(let checkpoint):
        let warning = "\(file): header says epoch \(checkpoint.epoch), skipped"
        logger.warning("\(warning)")
        warnings.append(warning)
      case .failure(let reason):
        let warning = "\(file): \(reason.text), skipped"
        logger.warning("\(warning)")
        warnings.append(warning)
      }
    }
    return nil
  }

  /// Epochs of the checkpoint files of `name`, oldest first (whether or not they verify).
  public func epochs(name: String) async throws -> [UInt64] {
    try listEpochs(name: name)
  }

  // MARK: - Format

  struct DecodeFailure: Error {
    var text: String
  }

  static func encode(_ checkpoint: Checkpoint) -> [UInt8] {
    var out = magic
    out.reserveCapacity(headerSize + checkpoint.data.count)
    appendLE(checkpoint.epoch, to: &out)
    appendLE(UInt64(checkpoint.data.count), to: &out)
    appendLE(checksum(epoch: checkpoint.epoch, data: checkpoint.data[...]), to: &out)
    out += checkpoint.data
    return out
  }

  static func decode(_ bytes: [UInt8]) -> Result<Checkpoint, DecodeFailure> {
    guard bytes.count >= headerSize else {
      return .failure(DecodeFailure(text: "truncated header (\(bytes.count) bytes, expected 32)"))
    }
    guard Array(bytes[0..<8]) == magic else {
      return .failure(DecodeFailure(text: "bad magic, expected TGCKPT01"))
    }
    let epoch = readLE(bytes, at: 8)
    let length = readLE(bytes, at: 16)
    let sum = readLE(bytes, at: 24)
    guard UInt64(bytes.count - headerSize) == length else {
      return .failure(
        DecodeFailure(
          text: "payload is \(bytes.count - headerSize) bytes, header says \(length)"))
    }
    let data = bytes[headerSize...]
    guard checksum(epoch: epoch, data: data) == sum else {
      return .failure(DecodeFailure(text: "checksum mismatch"))
    }
    return .success(Checkpoint(epoch: epoch, data: Array(data)))
  }

  private static func checksum(epoch: UInt64, data: ArraySlice<UInt8>) -> UInt64 {
    var h = FNV1a64()
    var header: [UInt8] = []
    appendLE(epoch, to: &header)
    appendLE(UInt64(data.count), to: &header)
    h.update(header)
    h.update(data)
    return h.value
  }

  private static func appendLE(_ v: UInt64, to out: inout [UInt8]) {
    for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
  }

  private static func readLE(_ bytes: [UInt8], at offset: Int) -> UInt64 {
    var v: UInt64 = 0
    for i in 0..<8 { v |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
    return v
  }

  private static func isValidName(_ name: String) -> Bool {
    !name.isEmpty && !name.contains("/") && !name.contains("-")
  }

  // MARK: - Files

  /// The path of the checkpoint of `name` at `epoch`.
  public func path(name: String, epoch: UInt64) -> String {
    "\(directory)/\(name)-\(epoch).ckpt"
  }

  private func listEpochs(name: String) throws -> [UInt64] {
    guard let dir = opendir(directory) else {
      throw CheckpointError(path: directory, operation: "opendir", errno: errno)
    }
    defer { closedir(dir) }
    var epochs: [UInt64] = []
    let prefix = "\(name)-"
    while let entry = readdir(dir) {
      let fileName = withUnsafeBytes(of: entry.pointee.d_name) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
      }
      guard fileName.hasPrefix(prefix), fileName.hasSuffix(".ckpt") else { continue }
      let middle = fileName.dropFirst(prefix.count).dropLast(".ckpt".count)
      if let epoch = UInt64(middle) { epochs.append(epoch) }
    }
    return epochs.sorted()
  }

  private func readFile(_ file: String) throws -> [UInt8] {
    let fd = open(file, O_RDONLY)
    guard fd >= 0 else { throw CheckpointError(path: file, operation: "open", errno: errno) }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
      let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
      if n < 0 {
        if errno == EINTR { continue }
        throw CheckpointError(path: file, operation: "read", errno: errno)
      }
      if n == 0 { break }
      out += chunk[0..<n]
    }
    return out
  }

  private func prune(name: String) throws {
    let epochs = try listEpochs(name: name)
    guard epochs.count > keep else { return }
    for epoch in epochs.dropLast(keep) { unlink(path(name: name, epoch: epoch)) }
    syncDirectory()
  }

  private func syncDirectory() {
    let fd = open(directory, O_RDONLY)
    guard fd >= 0 else { return }
    fsync(fd)
    close(fd)
  }
}

/// A file-system failure of the checkpoint store, naming the file and the operation.
public struct CheckpointError: Error, CustomStringConvertible, Sendable {
  /// The file or directory concerned.
  public var path: String
  /// The system call that failed (`open`, `write`, `fsync`, `rename`, …).
  public var operation: String
  /// The `errno` it failed with.
  public var errno: Int32

  /// Creates an error for `operation` on `path` failing with `errno`.
  public init(path: String, operation: String, errno: Int32) {
    self.path = path
    self.operation = operation
    self.errno = errno
  }

  /// The message, the code and the cause.
  public var description: String {
    "\(operation) \(path) failed: \(String(cString: strerror(errno)))"
  }
}
