import Foundation

/// Runs another `ByteReader` on a thread of its own, up to `depth` chunks ahead of the consumer,
/// so that producing the bytes (decompressing) overlaps with consuming them (parsing) on another
/// core. The bytes, their order and the errors are the inner reader's.
///
/// The producer stops when the input ends, when it fails (the consumer's next `read` throws
/// the error), or when the consumer lets go of this reader: `deinit` cancels it and waits for
/// the thread to finish, so no thread outlives the read.
final class ReadAheadReader: ByteReader {
  private let pipe: ChunkPipe
  private var current: [UInt8] = []
  private var position = 0
  private var ended = false

  /// Starts a thread that makes the inner reader with `make` and reads it in chunks of
  /// `chunkSize` bytes.
  init(
    chunkSize: Int = 1 << 20, depth: Int = 4,
    _ make: @escaping @Sendable () throws -> any ByteReader
  ) {
    precondition(chunkSize > 0 && depth > 0, "chunks and depth must be positive")
    let pipe = ChunkPipe(depth: depth)
    self.pipe = pipe
    let thread = Thread {
      defer { pipe.producerStopped() }
      do {
        var inner = try make()
        while true {
          let chunk = try [UInt8](unsafeUninitializedCapacity: chunkSize) { buffer, count in
            count = try inner.read(into: UnsafeMutableRawBufferPointer(buffer))
          }
          if chunk.isEmpty {
            pipe.put(.end)
            return
          }
          if !pipe.put(.chunk(chunk)) { return }
        }
      } catch {
        pipe.put(.failure(error))
      }
    }
    thread.name = "taskgraph-read-ahead"
    thread.start()
  }

  deinit {
    pipe.cancel()
    pipe.waitForProducer()
  }

  func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
    var done = 0
    while done < buffer.count {
      if position == current.count {
        if ended { break }
        switch pipe.take() {
        case .chunk(let chunk):
          current = chunk
          position = 0
        case .end:
          ended = true
          continue
        case .failure(let error):
          ended = true
          throw error
        }
      }
      let n = min(buffer.count - done, current.count - position)
      current.withUnsafeBytes { src in
        (buffer.baseAddress! + done).copyMemory(from: src.baseAddress! + position, byteCount: n)
      }
      position += n
      done += n
    }
    return done
  }
}

/// A bounded queue of chunks between one producer thread and one consumer.
///
/// `@unchecked Sendable`: every stored property but the immutable `depth` and `condition` is
/// read and written only while `condition` is locked, in the methods below.
private final class ChunkPipe: @unchecked Sendable {
  enum Item {
    case chunk([UInt8])
    case end
    case failure(any Error)
  }

  private let depth: Int
  private let condition = NSCondition()
  private var items: [Item] = []
  private var head = 0
  private var cancelled = false
  private var producerRunning = true

  init(depth: Int) { self.depth = depth }

  /// Adds an item, waiting while the queue is full; false if the consumer has cancelled.
  @discardableResult
  func put(_ item: Item) -> Bool {
    condition.lock()
    defer { condition.unlock() }
    while items.count - head >= depth && !cancelled { condition.wait() }
    if cancelled { return false }
    items.append(item)
    condition.broadcast()
    return true
  }

  /// Removes the oldest item, waiting for one.
  func take() -> Item {
    condition.lock()
    defer { condition.unlock() }
    while items.count == head { condition.wait() }
    let item = items[head]
    items[head] = .end
    head += 1
    if head == items.count {
      items.removeAll(keepingCapacity: true)
      head = 0
    }
    condition.broadcast()
    return item
  }

  func cancel() {
    condition.lock()
    cancelled = true
    items.removeAll()
    head = 0
    condition.broadcast()
    condition.unlock()
  }

  func producerStopped() {
    condition.lock()
    producerRunning = false
    condition.broadcast()
    condition.unlock()
  }

  func waitForProducer() {
    condition.lock()
    while producerRunning { condition.wait() }
    condition.unlock()
  }
}
