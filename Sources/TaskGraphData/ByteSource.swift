/// Where the bytes of a text input come from: a plain file read in parts (so a shard reads
/// only its byte range), a buffer already in memory (a decompressed gzip file), or a gzip file
/// decompressed as it is read.
enum ByteSource: Sendable {
  case file(path: String, size: Int)
  case memory([UInt8])
  /// Decompressed while it is read, never held whole. Its size is unknown (`size` is
  /// `Int.max`), so it serves whole-file reads, not byte-range shards. With `readAhead`,
  /// `windows` decompresses on another thread while the caller parses. The decompressed size
  /// is limited to `limits.decompressedBytes`.
  case gzip(path: String, readAhead: Bool, limits: DataLimits = .defaults)

  /// The size in bytes (`Int.max` for `.gzip`, whose end is found by reading).
  var size: Int {
    switch self {
    case .file(_, let size): return size
    case .memory(let bytes): return bytes.count
    case .gzip: return Int.max
    }
  }

  /// Bytes `[offset, offset + count)`, clipped to the end.
  func read(_ offset: Int, _ count: Int) throws -> [UInt8] {
    switch self {
    case .file(let path, _): return try InputFile.read(path, offset: offset, count: count)
    case .memory(let bytes):
      let lo = min(offset, bytes.count)
      let hi = min(bytes.count, offset + count)
      return Array(bytes[lo..<hi])
    case .gzip:
      var out: [UInt8] = []
      try chunks(from: offset) { buf, _ in
        out.append(contentsOf: buf.prefix(count - out.count))
        return out.count >= count
      }
      return out
    }
  }

  /// Calls `body` with consecutive chunks of `[from, size)` and their offsets until it
  /// returns true.
  func chunks(from: Int, _ body: (UnsafeBufferPointer<UInt8>, Int) -> Bool) throws {
    switch self {
    case .memory(let bytes):
      bytes.withUnsafeBufferPointer { all in
        _ = body(UnsafeBufferPointer(rebasing: all[min(from, all.count)...]), from)
      }
    case .file(let path, _):
      var reader = try FileReader(path: path, offset: from)
      try Self.chunks(of: &reader, startingAt: from, skipping: 0, body)
    case .gzip(let path, _, let limits):
      var reader = try Self.stream(path, limits)
      try Self.chunks(of: &reader, startingAt: 0, skipping: from, body)
    }
  }

  private static func stream(_ path: String, _ limits: DataLimits) throws -> GzipStream {
    try GzipStream(
      path: path, limit: limits.decompressedBytes, limitText: limits.decompressedText)
  }

  /// The chunks of `reader`, whose first byte is at source offset `start`, from source offset
  /// `skipping` on.
  private static func chunks<R: ByteReader>(
    of reader: inout R, startingAt start: Int, skipping: Int,
    _ body: (UnsafeBufferPointer<UInt8>, Int) -> Bool
  ) throws {
    // Chunks grow from 64 KiB to 4 MiB: a header or the first record needs little input.
    var size = 1 << 16
    var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
    defer { buffer.deallocate() }
    var offset = start
    while true {
      let n = try reader.read(into: buffer)
      if n == 0 { return }
      let all = UnsafeBufferPointer(
        start: buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), count: n)
      if offset + n > skipping {
        let skip = max(0, skipping - offset)
        if body(UnsafeBufferPointer(rebasing: all[skip...]), offset + skip) { return }
      }
      offset += n
      if size < 1 << 22 {
        size *= 4
        buffer.deallocate()
        buffer = .allocate(byteCount: size, alignment: 16)
      }
    }
  }

  /// Feeds the bytes from `start` on to `body` in windows, for parsing records that may
  /// straddle the end of a window.
  ///
  /// `body` gets a window, its offset in the source, and whether the window ends at the end of
  /// the source. It returns how many bytes at the front of the window it consumed (whole
  /// records), or nil when it needs no more input. The next window starts with the bytes it
  /// left; a window it consumes nothing of is doubled, so a record of any length fits. At the
  /// end of the source `body` is expected to consume everything. Memory is one window (4 MiB
  /// unless a record needs more), whatever the size of the source; a window would have to
  /// grow beyond `limit` bytes (a record that long: a line without end, or a quote never
  /// closed, in a file larger than memory) is the error `tooLong` makes of the source offset
  /// of the record.
  func windows(
    from start: Int, size: Int = 4 << 20, limit: Int = Int.max,
    tooLong: (Int) -> any Error = { _ in DataError(.tooLarge, "a record is too long") },
    _ body: (UnsafeBufferPointer<UInt8>, Int, Bool) throws -> Int?
  ) throws {
    switch self {
    case .memory(let bytes):
      try bytes.withUnsafeBufferPointer { all in
        _ = try body(UnsafeBufferPointer(rebasing: all[min(start, all.count)...]), start, true)
      }
    case .file(let path, let fileSize):
      var reader = try FileReader(path: path, offset: start)
      // A window one byte larger than a small file reads it, and sees its end, in one go.
      let window = max(1, min(size, fileSize - start + 1))
      try Self.windows(
        of: &reader, from: start, size: window, limit: limit, tooLong: tooLong, body)
    case .gzip(let path, let readAhead, let limits):
      // The stream is checked to its end before an error of `body` is passed on: damaged
      // input can decompress to text that fails to parse before zlib notices the damage,
      // and a damaged file should be reported as one.
      if readAhead {
        var reader = ReadAheadReader { try Self.stream(path, limits) }
        try Self.windows(
          of: &reader, from: start, size: size, limit: limit, tooLong: tooLong, body,
          skipping: start, verifyOnError: true)
      } else {
        var reader = try Self.stream(path, limits)
        try Self.windows(
          of: &reader, from: start, size: size, limit: limit, tooLong: tooLong, body,
          skipping: start, verifyOnError: true)
      }
    }
  }

  private static func windows<R: ByteReader>(
    of reader: inout R, from start: Int, size: Int, limit: Int, tooLong: (Int) -> any Error,
    _ body: (UnsafeBufferPointer<UInt8>, Int, Bool) throws -> Int?, skipping: Int = 0,
    verifyOnError: Bool = false
  ) throws {
    var capacity = size
    var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 16)
    defer { buffer.deallocate() }
    var filled = 0
    var offset = start
    var atEnd = false
    // Bytes before `start` of a stream that cannot seek are read and dropped.
    var toSkip = skipping
    while toSkip > 0 {
      let n = try reader.read(
        into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<min(capacity, toSkip)]))
      if n == 0 { return }
      toSkip -= n
    }
    while true {
      while filled < capacity && !atEnd {
        let n = try reader.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
        if n == 0 { atEnd = true }
        filled += n
      }
      let window = UnsafeBufferPointer(
        start: buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), count: filled)
      let result: Int?
      do {
        result = try body(window, offset, atEnd)
      } catch {
        if verifyOnError && !atEnd {
          while try reader.read(into: buffer) > 0 {}
        }
        throw error
      }
      guard let consumed = result, !atEnd else { return }
      precondition(consumed >= 0 && consumed <= filled, "consumed bytes outside the window")
      if consumed == 0 && filled == capacity {
        if capacity > limit / 2 { throw tooLong(offset) }
        let larger = UnsafeMutableRawBufferPointer.allocate(
          byteCount: 2 * capacity, alignment: 16)
        larger.copyMemory(from: UnsafeRawBufferPointer(buffer))
        buffer.deallocate()
        buffer = larger
        capacity *= 2
      } else if consumed > 0 {
        let rest = filled - consumed
        if rest > 0 {
          buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + consumed, byteCount: rest)
        }
        filled = rest
        offset += consumed
      }
    }
  }

  /// The 1-based line number of byte `offset` (counts the line feeds before it).
  func lineNumber(at offset: Int) -> Int? {
    var lines = 1
    var remaining = offset
    do {
      try chunks(from: 0) { buf, _ in
        let n = min(remaining, buf.count)
        for k in 0..<n where buf[k] == CSVScanner.newline { lines += 1 }
        remaining -= n
        return remaining <= 0
      }
    } catch {
      return nil
    }
    return lines
  }
}
