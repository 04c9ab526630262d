import GRPCCore
import GRPCNIOTransportHTTP2
import TaskGraph

/// The parts of protobuf's binary wire format that the transport writes and reads by hand:
/// varints and one length-delimited `bytes` field at the end of a message.
///
/// A payload carried by SwiftProtobuf is copied into `Data` and out again on each side;
/// writing the payload field here instead copies it once between the caller's array and
/// gRPC's buffer. The other fields still go through SwiftProtobuf, and everything written
/// is plain protobuf, readable by any implementation of `taskgraph_transport.proto`.
enum ProtobufWire {
  /// Wire type 2: a varint length, then that many bytes.
  static let lengthDelimited: UInt64 = 2

  /// The bytes a varint of `value` takes.
  static func varintSize(_ value: UInt64) -> Int {
    var size = 1
    var rest = value >> 7
    while rest != 0 {
      size += 1
      rest >>= 7
    }
    return size
  }

  /// Writes `value` as a varint at `offset` and advances it.
  static func writeVarint(
    _ value: UInt64, into buffer: UnsafeMutableRawBufferPointer, at offset: inout Int
  ) {
    var rest = value
    while rest >= 0x80 {
      buffer[offset] = UInt8(truncatingIfNeeded: rest) | 0x80
      offset += 1
      rest >>= 7
    }
    buffer[offset] = UInt8(rest)
    offset += 1
  }

  /// Reads a varint at `offset` and advances past it; nil if it is truncated or longer
  /// than ten bytes.
  static func readVarint(_ buffer: UnsafeRawBufferPointer, at offset: inout Int) -> UInt64? {
    var value: UInt64 = 0
    var shift: UInt64 = 0
    while offset < buffer.count && shift < 64 {
      let byte = buffer[offset]
      offset += 1
      value |= UInt64(byte & 0x7f) << shift
      if byte < 0x80 { return value }
      shift += 7
    }
    return nil
  }

  /// The encoded message `head` followed by field `number` holding `payload`: the whole
  /// message, made with one copy of each of the payload's parts.
  static func message<Bytes: GRPCContiguousBytes>(
    head: [UInt8], field number: Int, payload: Payload
  ) -> Bytes {
    // Made from a sequence that copies itself in one go, not from a zero-filled buffer
    // written over: a buffer of megabytes is then written once instead of twice.
    Bytes(MessageBytes(head: head, field: number, payload: payload))
  }

  /// How `payload` is split, for a message's `payload_parts`: empty when it is one part of
  /// bytes (or none), which is how a reader that knows no parts sees every payload.
  static func layout(of payload: Payload) -> [Taskgraph_Transport_V1_PayloadPart] {
    if payload.parts.isEmpty { return [] }
    if payload.parts.count == 1, case .bytes = payload.parts[0] { return [] }
    return payload.parts.map { part in
      var entry = Taskgraph_Transport_V1_PayloadPart()
      switch part {
      case .doubles, .sharedDoubles: entry.kind = .doubles
      case .bytes: break
      }
      entry.length = UInt64(part.count)
      return entry
    }
  }

  /// The payload in `range` of `buffer`, split as `layout` says: bytes are copied into
  /// arrays of bytes; doubles are read in place from `shared` when it is given (the
  /// received message whose bytes `buffer` shows), else copied into arrays of doubles.
  static func payload(
    _ buffer: UnsafeRawBufferPointer, _ range: Range<Int>,
    layout: [Taskgraph_Transport_V1_PayloadPart], shared: (any SharedBytes)? = nil
  ) throws -> Payload {
    if layout.isEmpty { return range.isEmpty ? Payload() : Payload(array(buffer, range)) }
    var total: UInt64 = 0
    for entry in layout {
      let (sum, overflow) = total.addingReportingOverflow(entry.length)
      guard !overflow else { throw PayloadLayoutError(description: "part lengths overflow") }
      total = sum
      switch entry.kind {
      case .bytes: break
      case .doubles:
        guard entry.length % 8 == 0 else {
          throw PayloadLayoutError(
            description: "a part of doubles has \(entry.length) bytes, not a multiple of 8")
        }
      case .UNRECOGNIZED(let kind):
        throw PayloadLayoutError(description: "unknown payload part kind \(kind)")
      }
    }
    guard total == UInt64(range.count) else {
      throw PayloadLayoutError(
        description: "payload parts add up to \(total) bytes, the payload has \(range.count)")
    }
    var offset = range.lowerBound
    let parts = layout.map { entry -> Payload.Part in
      let part = offset..<(offset + Int(entry.length))
      offset = part.upperBound
      guard entry.kind == .doubles else { return .bytes(array(buffer, part)) }
      let n = part.count / 8
      if let shared {
        return .sharedDoubles(SharedDoubles(shared, byteOffset: part.lowerBound, count: n))
      }
      return .doubles(
        [Double](unsafeUninitializedCapacity: n) { out, count in
          if n > 0 {
            UnsafeMutableRawPointer(out.baseAddress!).copyMemory(
              from: buffer.baseAddress! + part.lowerBound, byteCount: part.count)
          }
          count = n
        })
    }
    return Payload(parts: parts)
  }

  /// Where the length-delimited field `number` of the encoded message `buffer` starts
  /// (its key) and the range of its content, if it occurs exactly once and is the last
  /// field. Nil otherwise, or if the message is malformed: the caller then decodes the
  /// message the general way.
  static func trailingField(_ number: Int, in buffer: UnsafeRawBufferPointer) -> (
    start: Int, content: Range<Int>
  )? {
    var offset = 0
    var found: (start: Int, content: Range<Int>)?
    while offset < buffer.count {
      let start = offset
      guard let key = readVarint(buffer, at: &offset) else { return nil }
      let isWanted = key >> 3 == UInt64(number)
      // A field after the wanted one (or a second occurrence) defeats the shortcut.
      if found != nil { return nil }
      switch key & 7 {
      case 0:
        guard !isWanted, readVarint(buffer, at: &offset) != nil else { return nil }
      case 1:
        guard !isWanted else { return nil }
        offset += 8
      case lengthDelimited:
        guard let length = readVarint(buffer, at: &offset), length <= buffer.count - offset
        else { return nil }
        let content = offset..<(offset + Int(length))
        offset = content.upperBound
        if isWanted { found = (start, content) }
      case 5:
        guard !isWanted else { return nil }
        offset += 4
      default:
        return nil
      }
    }
    return offset == buffer.count ? found : nil
  }

  /// A copy of `range` of `buffer` as an array.
  static func array(_ buffer: UnsafeRawBufferPointer, _ range: Range<Int>) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: range.count) { out, count in
      if let base = buffer.baseAddress, range.count > 0 {
        UnsafeMutableRawPointer(out.baseAddress!).copyMemory(
          from: base + range.lowerBound, byteCount: range.count)
      }
      count = range.count
    }
  }
}

/// A received message's bytes, held so that the vectors of doubles in it are read in
/// place: gRPC hands a deserializer bytes that nothing changes afterwards (the NIO
/// transport's are a `ByteBuffer`, copied on write), so holding them keeps them as they
/// are.
struct ReceivedBytes: SharedBytes {
  let bytes: any GRPCContiguousBytes & Sendable

  /// The message `bytes` as shared bytes, if they are of a type known to be a value that
  /// can be held across threads: the NIO transport's, or an array.
  static func holding<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) -> ReceivedBytes? {
    if let received = bytes as? GRPCNIOTransportBytes { return ReceivedBytes(bytes: received) }
    if let received = bytes as? [UInt8] { return ReceivedBytes(bytes: received) }
    return nil
  }

  func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try bytes.withUnsafeBytes(body)
  }
}

/// A message's `payload_parts` do not describe its payload.
struct PayloadLayoutError: Error, CustomStringConvertible {
  var description: String
}

/// The bytes of an encoded message: a head, then one length-delimited field holding a
/// payload. As a sequence it copies itself into a destination in one pass
/// (`_copyContents`), so a buffer made from it (`Array`, NIO's `ByteBuffer`) is written
/// once, without the zero fill of `init(repeating:count:)`; its byte-by-byte iterator
/// serves any other consumer.
struct MessageBytes: Sequence {
  let head: [UInt8]
  let field: Int
  let payload: Payload
  let count: Int

  init(head: [UInt8], field: Int, payload: Payload) {
    self.head = head
    self.field = field
    self.payload = payload
    let key = UInt64(field) << 3 | ProtobufWire.lengthDelimited
    self.count =
      head.count + ProtobufWire.varintSize(key) + ProtobufWire.varintSize(UInt64(payload.count))
      + payload.count
  }

  private var key: UInt64 { UInt64(field) << 3 | ProtobufWire.lengthDelimited }

  var underestimatedCount: Int { count }

  /// Writes the message into `out`, which holds at least `count` bytes.
  func write(into out: UnsafeMutableRawBufferPointer) {
    var offset = 0
    head.withUnsafeBytes { source in
      if let base = source.baseAddress {
        out.baseAddress!.copyMemory(from: base, byteCount: source.count)
      }
    }
    offset += head.count
    ProtobufWire.writeVarint(key, into: out, at: &offset)
    ProtobufWire.writeVarint(UInt64(payload.count), into: out, at: &offset)
    payload.copyBytes(to: UnsafeMutableRawBufferPointer(rebasing: out[offset...]))
  }

  func _copyContents(initializing buffer: UnsafeMutableBufferPointer<UInt8>) -> (Iterator, Int) {
    // A destination too small for the whole message takes it byte by byte, as any
    // sequence's would.
    guard buffer.count >= count else {
      var iterator = makeIterator()
      var written = 0
      while written < buffer.count, let byte = iterator.next() {
        buffer[written] = byte
        written += 1
      }
      return (iterator, written)
    }
    if count > 0 { write(into: UnsafeMutableRawBufferPointer(buffer)) }
    return (Iterator(bytes: [], position: 0), count)
  }

  func makeIterator() -> Iterator {
    Iterator(
      bytes: [UInt8](unsafeUninitializedCapacity: count) { out, n in
        if count > 0 { write(into: UnsafeMutableRawBufferPointer(out)) }
        n = count
      }, position: 0)
  }

  struct Iterator: IteratorProtocol {
    let bytes: [UInt8]
    var position: Int

    mutating func next() -> UInt8? {
      guard position < bytes.count else { return nil }
      defer { position += 1 }
      return bytes[position]
    }
  }
}
