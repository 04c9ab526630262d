import GRPCCore
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
    let key = UInt64(number) << 3 | lengthDelimited
    let length = payload.count
    let total = head.count + varintSize(key) + varintSize(UInt64(length)) + length
    var message = Bytes(repeating: 0, count: total)
    message.withUnsafeMutableBytes { out in
      var offset = 0
      head.withUnsafeBytes { source in
        out.baseAddress?.copyMemory(from: source.baseAddress!, byteCount: source.count)
      }
      offset += head.count
      writeVarint(key, into: out, at: &offset)
      writeVarint(UInt64(length), into: out, at: &offset)
      payload.copyBytes(to: UnsafeMutableRawBufferPointer(rebasing: out[offset...]))
    }
    return message
  }

  /// How `payload` is split, for a message's `payload_parts`: empty when it is one part of
  /// bytes (or none), which is how a reader that knows no parts sees every payload.
  static func layout(of payload: Payload) -> [Taskgraph_Transport_V1_PayloadPart] {
    if payload.parts.isEmpty { return [] }
    if payload.parts.count == 1, case .bytes = payload.parts[0] { return [] }
    return payload.parts.map { part in
      var entry = Taskgraph_Transport_V1_PayloadPart()
      if case .doubles = part { entry.kind = .doubles }
      entry.length = UInt64(part.count)
      return entry
    }
  }

  /// The payload in `range` of `buffer`, split as `layout` says: doubles are copied
  /// straight into arrays of doubles, bytes into arrays of bytes.
  static func payload(
    _ buffer: UnsafeRawBufferPointer, _ range: Range<Int>,
    layout: [Taskgraph_Transport_V1_PayloadPart]
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

/// A message's `payload_parts` do not describe its payload.
struct PayloadLayoutError: Error, CustomStringConvertible {
  var description: String
}
