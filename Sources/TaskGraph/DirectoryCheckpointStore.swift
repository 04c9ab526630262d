import CTaskGraphKernels
import Logging

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The embedded checkpoint store: one file per checkpoint in a local directory,
/// `name-<epoch>.ckpt`, written atomically and checksummed.
///
/// File format: a 32-byte header — magic `TGCKPT02` (8 bytes), epoch (UInt64 LE), payload
/// length (UInt64 LE), CRC-32C of epoch, length and payload (as a UInt64 LE) — followed by
/// the payload. Version-1 files (magic `TGCKPT01`, the same layout with an FNV-1a 64
/// checksum) are still read. A save writes a temporary file, fsyncs it, renames it into
/// place and fsyncs the directory, so a crash leaves either the old set of checkpoints or
/// the new one. After a save only the newest `keep` checkpoints of that name remain.
///
/// The file work runs on threads of its own (`Offload`), not on the caller's: writing and
/// syncing a checkpoint of a million-feature optimizer (170 MB) takes a while. Saves run at
/// background priority (a save is not waited for while training); reads do not (a restore
/// is).
public struct DirectoryCheckpointStore: CheckpointStore {
  /// The directory holding the checkpoint files.
  public let directory: String
  /// How many checkpoints per name are kept.
  public let keep: Int
  private let logger: Logger

  private static let magic: [UInt8] = Array("TGCKPT02".utf8)
  private static let magicVersion1: [UInt8] = Array("TGCKPT01".utf8)
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
    try await Offload.run(priority: .background) { try self.writeFile(checkpoint, name: name) }
  }

  /// Checkpoints of at least this many bytes are written with O_DIRECT where the filesystem
  /// allows it: straight from an aligned buffer to the device, without the page cache. For a
  /// 170 MB checkpoint that took 16 ms of CPU here instead of 45 ms (and the kernel's
  /// writeback threads' work besides), which matters when it runs beside training.
  package static let directThreshold = 1 << 20
  private static let block = 4096
  private static let chunk = 4 << 20

  private func writeFile(_ checkpoint: Checkpoint, name: String) throws {
    let parts = [.bytes(Self.header(checkpoint))] + checkpoint.parts
    let total = Self.headerSize + checkpoint.count
    let final = path(name: name, epoch: checkpoint.epoch)
    let temp = "\(directory)/.\(name)-\(checkpoint.epoch).\(UInt64.random(in: 0...UInt64.max)).tmp"
    var ok = false
    defer {
      if !ok { unlink(temp) }
    }
    var direct = total >= Self.directThreshold
    while true {
      let fd = direct ? tg_create_direct(temp) : open(temp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
      if fd < 0 && direct && errno == EINVAL {
        direct = false  // The filesystem does not do O_DIRECT (tmpfs): write through the cache.
        continue
      }
      guard fd >= 0 else { throw CheckpointError(path: temp, operation: "open", errno: errno) }
      defer { close(fd) }
      do {
        if direct {
          try writeDirect(fd, parts, total: total, path: temp)
        } else {
          // Header and parts are written one after the other: the payload is not gathered.
          for part in parts {
            try part.withUnsafeBytes { try writeAll(fd, $0, path: temp) }
          }
        }
      } catch let error as CheckpointError where direct && error.errno == EINVAL {
        direct = false  // Opened, but the writes were refused: write through the cache.
        continue
      }
      guard fsync(fd) == 0 else {
        throw CheckpointError(path: temp, operation: "fsync", errno: errno)
      }
      break
    }
    guard rename(temp, final) == 0 else {
      throw CheckpointError(path: final, operation: "rename", errno: errno)
    }
    ok = true
    syncDirectory()
    try prune(name: name, after: checkpoint.epoch)
  }

  /// Writes all of `bytes` at the descriptor's offset.
  private func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
    var offset = 0
    while offset < bytes.count {
      let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
      if n < 0 {
        if errno == EINTR { continue }
        throw CheckpointError(path: path, operation: "write", errno: errno)
      }
      offset += n
    }
  }

  /// Writes `parts` (`total` bytes) to an O_DIRECT descriptor through an aligned buffer of
  /// `chunk` bytes: full chunks, then the rest padded to a block, then the file is cut to
  /// `total` bytes.
  private func writeDirect(_ fd: Int32, _ parts: [Checkpoint.Part], total: Int, path: String)
    throws
  {
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: Self.chunk, alignment: Self.block)
    defer { buffer.deallocate() }
    var filled = 0
    func flush() throws {
      let size = (filled + Self.block - 1) / Self.block * Self.block
      (buffer + filled).initializeMemory(as: UInt8.self, repeating: 0, count: size - filled)
      try writeAll(fd, UnsafeRawBufferPointer(start: buffer, count: size), path: path)
      filled = 0
    }
    for part in parts {
      try part.withUnsafeBytes { source in
        var offset = 0
        while offset < source.count {
          let n = min(source.count - offset, Self.chunk - filled)
          (buffer + filled).copyMemory(from: source.baseAddress! + offset, byteCount: n)
          filled += n
          offset += n
          if filled == Self.chunk { try flush() }
        }
      }
    }
    if filled > 0 { try flush() }
    guard ftruncate(fd, off_t(total)) == 0 else {
      throw CheckpointError(path: path, operation: "ftruncate", errno: errno)
    }
  }

  /// The newest checkpoint of `name` whose header and checksum verify; corrupted newer ones are skipped, logged and listed in `warnings`.
  public func latest(name: String) async throws -> (checkpoint: Checkpoint, warnings: [String])? {
    try await Offload.run { try self.newest(name: name) }
  }

  private func newest(name: String) throws -> (checkpoint: Checkpoint, warnings: [String])? {
    var warnings: [String] = []
    for epoch in try listEpochs(name: name).reversed() {
      let file = path(name: name, epoch: epoch)
      let (header, payload) = try readFile(file)
      switch Self.decode(header: header, payload: payload) {
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

  /// The 32-byte header of `checkpoint` (the payload follows it).
  static func header(_ checkpoint: Checkpoint) -> [UInt8] {
    var out = magic
    out.reserveCapacity(headerSize)
    appendLE(checkpoint.epoch, to: &out)
    appendLE(UInt64(checkpoint.count), to: &out)
    appendLE(checksum(out[8..<24], checkpoint.parts), to: &out)
    return out
  }

  /// Reads a checkpoint from its file's first 32 bytes (fewer if the file is shorter) and
  /// the rest.
  static func decode(header: [UInt8], payload: [UInt8]) -> Result<Checkpoint, DecodeFailure> {
    guard header.count >= headerSize else {
      return .failure(
        DecodeFailure(text: "truncated header (\(header.count) bytes, expected 32)"))
    }
    let version1 = header[0..<8].elementsEqual(magicVersion1)
    guard version1 || header[0..<8].elementsEqual(magic) else {
      return .failure(DecodeFailure(text: "bad magic, expected TGCKPT02 (or TGCKPT01)"))
    }
    let epoch = readLE(header, at: 8)
    let length = readLE(header, at: 16)
    let sum = readLE(header, at: 24)
    guard UInt64(payload.count) == length else {
      return .failure(
        DecodeFailure(text: "payload is \(payload.count) bytes, header says \(length)"))
    }
    // The checksum covers the epoch and length fields (bytes 8..<24), then the payload.
    let expected =
      version1
      ? checksumVersion1(header[8..<24], payload)
      : checksum(header[8..<24], [.bytes(payload)])
    guard expected == sum else {
      return .failure(DecodeFailure(text: "checksum mismatch"))
    }
    return .success(Checkpoint(epoch: epoch, data: payload))
  }

  /// CRC-32C of the header's epoch and length fields and of the payload's parts.
  private static func checksum(_ fields: ArraySlice<UInt8>, _ parts: [Checkpoint.Part])
    -> UInt64
  {
    var crc = CRC32C()
    crc.update(fields)
    for part in parts { part.withUnsafeBytes { crc.update($0) } }
    return UInt64(crc.value)
  }

  /// Version 1's checksum: FNV-1a 64 of the same bytes.
  private static func checksumVersion1(_ fields: ArraySlice<UInt8>, _ payload: [UInt8]) -> UInt64 {
    var h = FNV1a64()
    h.update(fields)
    h.update(payload)
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
    var epochs: [UInt64] = []
    let prefix = "\(name)-"
    for fileName in try fileNames() {
      guard fileName.hasPrefix(prefix), fileName.hasSuffix(".ckpt") else { continue }
      let middle = fileName.dropFirst(prefix.count).dropLast(".ckpt".count)
      if let epoch = UInt64(middle) { epochs.append(epoch) }
    }
    return epochs.sorted()
  }

  /// The names of the directory's entries.
  private func fileNames() throws -> [String] {
    guard let dir = opendir(directory) else {
      throw CheckpointError(path: directory, operation: "opendir", errno: errno)
    }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
      names.append(
        withUnsafeBytes(of: entry.pointee.d_name) { raw in
          String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        })
    }
    return names
  }

  /// Temporary files of `name` for epochs before `epoch` (`.name-<epoch>.<random>.tmp`):
  /// left by a writer killed mid-save (up to a checkpoint's size each). A writer still
  /// alive with such a file was saving a checkpoint older than the one just saved; its
  /// rename then fails, with a warning, and nothing newer is lost.
  private func staleTemporaries(name: String, before epoch: UInt64) throws -> [String] {
    let prefix = ".\(name)-"
    return try fileNames().filter { fileName in
      guard fileName.hasPrefix(prefix), fileName.hasSuffix(".tmp") else { return false }
      let fields = fileName.dropFirst(prefix.count).split(separator: ".")
      guard fields.count == 3, let written = UInt64(fields[0]) else { return false }
      return written < epoch
    }
  }

  /// A file's first `headerSize` bytes (fewer if it is shorter) and the rest, each read
  /// straight into its array.
  private func readFile(_ file: String) throws -> (header: [UInt8], payload: [UInt8]) {
    let fd = open(file, O_RDONLY)
    guard fd >= 0 else { throw CheckpointError(path: file, operation: "open", errno: errno) }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else {
      throw CheckpointError(path: file, operation: "fstat", errno: errno)
    }
    let size = Int(info.st_size)
    func take(_ count: Int) throws -> [UInt8] {
      var out = [UInt8](repeating: 0, count: count)
      let got = try out.withUnsafeMutableBytes { buf -> Int in
        var offset = 0
        while offset < count {
          let n = read(fd, buf.baseAddress! + offset, count - offset)
          if n < 0 {
            if errno == EINTR { continue }
            throw CheckpointError(path: file, operation: "read", errno: errno)
          }
          if n == 0 { break }
          offset += n
        }
        return offset
      }
      out.removeLast(count - got)
      return out
    }
    let header = try take(min(size, Self.headerSize))
    return (header, try take(max(0, size - Self.headerSize)))
  }

  /// Keeps the newest `keep` checkpoints of `name`, and removes temporary files that
  /// writers killed mid-save left for epochs before `epoch` (the one just saved).
  private func prune(name: String, after epoch: UInt64) throws {
    let stale = try staleTemporaries(name: name, before: epoch)
    for file in stale { unlink("\(directory)/\(file)") }
    let epochs = try listEpochs(name: name)
    guard epochs.count > keep || !stale.isEmpty else { return }
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
