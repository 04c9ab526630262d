import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf
import TaskGraph
import Testing

@testable import TaskGraphGRPC

private let sample = DataRequest(
  job: "job", from: 3, to: 5, epoch: 7, id: 0xdead_beef_0000_0001, method: "gradient",
  payload: Payload((0..<300).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) }))

/// `sample` as SwiftProtobuf writes it (fields in number order: the payload, 7, before the
/// call number, 8).
private func generalEncoding(_ request: DataRequest, call: UInt64) throws -> [UInt8] {
  var message = Taskgraph_Transport_V1_DataRequestMessage()
  message.job = request.job
  message.from = Int64(request.from)
  message.to = Int64(request.to)
  message.epoch = request.epoch
  message.id = request.id
  message.method = request.method
  message.payload = Data(request.payload.bytes)
  message.call = call
  message.payloadParts = ProtobufWire.layout(of: request.payload)
  return try message.serializedBytes()
}

/// Where `ProtobufWire.trailingField` finds field 7: `[start, content start, content end]`.
private func trailing(_ bytes: [UInt8]) -> [Int]? {
  bytes.withUnsafeBytes { raw in
    ProtobufWire.trailingField(7, in: raw).map {
      [$0.start, $0.content.lowerBound, $0.content.upperBound]
    }
  }
}

@Suite("Data request coding")
struct DataRequestCodingTests {
  @Test("a request is plain protobuf: SwiftProtobuf reads every field")
  func requestIsProtobuf() throws {
    let bytes: [UInt8] = try DataRequestSerializer().serialize(Numbered(call: 42, message: sample))
    let message = try Taskgraph_Transport_V1_DataRequestMessage(serializedBytes: bytes)
    #expect(message.job == "job" && message.from == 3 && message.to == 5)
    #expect(message.epoch == 7 && message.id == sample.id && message.method == "gradient")
    #expect(message.call == 42)
    #expect([UInt8](message.payload) == sample.payload.bytes)
  }

  @Test("requests round-trip, payload last or not, empty or not")
  func requestRoundTrip() throws {
    for request in [sample, DataRequest(job: "", from: 0, to: 0, epoch: 0, id: 0, method: "")] {
      let bytes: [UInt8] = try DataRequestSerializer().serialize(
        Numbered(call: 9, message: request))
      let decoded = try DataRequestDeserializer().deserialize(bytes)
      #expect(decoded.call == 9 && decoded.message == request)
      // SwiftProtobuf's order puts the call number after the payload: the general path.
      let general = try DataRequestDeserializer().deserialize(
        try generalEncoding(request, call: 11))
      #expect(general.call == 11 && general.message == request)
    }
  }

  @Test("replies round-trip: payloads, empty payloads and typed errors")
  func replyRoundTrip() throws {
    var stale = Taskgraph_Transport_V1_DataError()
    stale.code = .staleEpoch
    stale.message = "behind"
    stale.serverEpoch = 4
    for reply in [DataReply.payload(sample.payload), .payload([]), .error(stale)] {
      let bytes: [UInt8] = try DataReplySerializer().serialize(Numbered(call: 3, message: reply))
      let decoded = try DataReplyDeserializer().deserialize(bytes)
      #expect(decoded.call == 3 && decoded.message == reply)
      // And SwiftProtobuf reads the same message.
      let message = try Taskgraph_Transport_V1_DataResponseMessage(serializedBytes: bytes)
      #expect(message.call == 3)
      switch reply {
      case .payload(let payload): #expect(message.payload == Data(payload.bytes))
      case .error(let error): #expect(message.error == error)
      }
    }
    // A reply as SwiftProtobuf writes it (payload, then the call number).
    var message = Taskgraph_Transport_V1_DataResponseMessage()
    message.payload = Data([1, 2, 3])
    message.call = 8
    let general = try DataReplyDeserializer().deserialize(try message.serializedBytes() as [UInt8])
    #expect(general.call == 8 && general.message == .payload([1, 2, 3]))
    // A writer that leaves the oneof unset sends an empty payload.
    let empty = try DataReplyDeserializer().deserialize([UInt8]())
    #expect(empty.call == 0 && empty.message == .payload([]))
  }

  @Test("a payload in parts keeps them: doubles are read back as doubles, bit for bit")
  func partsRoundTrip() throws {
    let weights = (0..<1000).map { Double($0) * 0.25 - 7 }
    let edges: [Double] = [-0.0, .infinity, .leastNonzeroMagnitude, .nan]
    let payload = Payload(parts: [
      .bytes([1, 2, 3]), .doubles(weights), .bytes([4]), .doubles([]), .doubles(edges),
    ])
    var request = sample
    request.payload = payload
    // Doubles read in place from the received bytes (`shared`), or copied into arrays.
    func expectParts(_ decoded: Payload, shared: Bool) {
      guard decoded.parts.count == 5, case .bytes(let head) = decoded.parts[0],
        let back = doubles(decoded.parts[1], shared: shared),
        let last = doubles(decoded.parts[4], shared: shared)
      else {
        Issue.record("parts lost or not \(shared ? "shared" : "arrays"): \(decoded.parts)")
        return
      }
      #expect(head == [1, 2, 3])
      #expect(back.map(\.bitPattern) == weights.map(\.bitPattern))
      #expect(last.map(\.bitPattern) == edges.map(\.bitPattern))
    }
    let bytes: [UInt8] = try DataRequestSerializer().serialize(Numbered(call: 5, message: request))
    let decoded = try DataRequestDeserializer().deserialize(bytes)
    #expect(decoded.call == 5 && decoded.message == request)
    expectParts(decoded.message.payload, shared: true)
    // A reader that knows no parts sees the same bytes; the layout is plain protobuf.
    let message = try Taskgraph_Transport_V1_DataRequestMessage(serializedBytes: bytes)
    #expect([UInt8](message.payload) == payload.bytes)
    #expect(message.payloadParts.map(\.length) == [3, 8000, 1, 0, 32])
    #expect(message.payloadParts.map(\.kind) == [.bytes, .doubles, .bytes, .doubles, .doubles])
    // The general path (the payload not last) keeps the parts too.
    expectParts(
      try DataRequestDeserializer().deserialize(try generalEncoding(request, call: 6)).message
        .payload, shared: false)
    let replyBytes: [UInt8] = try DataReplySerializer().serialize(
      Numbered(call: 2, message: .payload(payload)))
    let reply = try DataReplyDeserializer().deserialize(replyBytes)
    guard case .payload(let replied) = reply.message else {
      Issue.record("no payload")
      return
    }
    expectParts(replied, shared: true)
  }

  @Test("doubles read in place keep their values at every alignment the bytes can have")
  func sharedDoublesAtAnyAlignment() throws {
    let values = (0..<700).map { Double($0) * -1.5 + 0.125 }
    var request = sample
    request.payload = Payload(parts: [.doubles(values)])
    let bytes: [UInt8] = try DataRequestSerializer().serialize(Numbered(call: 1, message: request))
    var layout = Taskgraph_Transport_V1_PayloadPart()
    layout.kind = .doubles
    layout.length = UInt64(values.count * 8)
    // The same message at each of the eight offsets from an aligned start: a transport's
    // framing puts a message's bytes wherever it likes.
    for shift in 0..<8 {
      let backing = [UInt8](repeating: 0xee, count: shift) + bytes
      let shared = OffsetBytes(backing: backing, offset: shift)
      let payload = try shared.withUnsafeBytes { raw in
        try ProtobufWire.payload(
          raw, ProtobufWire.trailingField(7, in: raw)!.content,
          layout: [layout], shared: shared)
      }
      guard case .sharedDoubles(let read) = payload.parts.first else {
        Issue.record("not read in place at shift \(shift)")
        continue
      }
      #expect(read.array.map(\.bitPattern) == values.map(\.bitPattern))
      #expect(read[699] == values[699] && read[0] == values[0])
      #expect(read == SharedDoubles(values))
    }
  }

  @Test("a message's bytes copy themselves in one pass, and iterate to the same bytes")
  func messageBytes() {
    let head: [UInt8] = [0x0a, 0x03, 0x6a, 0x6f, 0x62]
    let payload = Payload(parts: [.bytes([9, 8]), .doubles([1.5, -2]), .bytes([7])])
    let message = MessageBytes(head: head, field: 7, payload: payload)
    // Field 7, length-delimited: key 0x3a, then the length (2 + 16 + 1 = 19).
    let expected = head + [0x3a, 19] + payload.bytes
    #expect(message.count == expected.count)
    #expect([UInt8](message) == expected, "through _copyContents")
    var iterated: [UInt8] = []
    var iterator = message.makeIterator()
    while let byte = iterator.next() { iterated.append(byte) }
    #expect(iterated == expected, "byte by byte")
    // A destination too short takes a prefix; the iterator returned yields the rest.
    var prefix = [UInt8](repeating: 0, count: 10)
    let (rest, written) = prefix.withUnsafeMutableBufferPointer {
      message._copyContents(initializing: $0)
    }
    #expect(written == 10 && prefix == Array(expected[..<10]))
    var tail: [UInt8] = []
    var remaining = rest
    while let byte = remaining.next() { tail.append(byte) }
    #expect(tail == Array(expected[10...]))
    // Empty: nothing but the key and a zero length.
    #expect([UInt8](MessageBytes(head: [], field: 1, payload: Payload())) == [0x0a, 0])
  }

  @Test("a layout that does not describe its payload is refused")
  func badLayouts() throws {
    func part(_ kind: Taskgraph_Transport_V1_PayloadPart.Kind, _ length: UInt64)
      -> Taskgraph_Transport_V1_PayloadPart
    {
      var entry = Taskgraph_Transport_V1_PayloadPart()
      entry.kind = kind
      entry.length = length
      return entry
    }
    let layouts: [[Taskgraph_Transport_V1_PayloadPart]] = [
      [part(.bytes, 15)],  // short of the payload's 16 bytes
      [part(.doubles, 8), part(.bytes, 9)],  // beyond them
      [part(.doubles, 12), part(.bytes, 4)],  // doubles not a multiple of 8
      [part(.UNRECOGNIZED(7), 16)],
      [part(.bytes, .max), part(.bytes, 17)],  // lengths that overflow
    ]
    for layout in layouts {
      var head = Taskgraph_Transport_V1_DataRequestMessage()
      head.job = "job"
      head.payloadParts = layout
      let payload = Payload((0..<16).map { UInt8($0) })
      // The payload last (the shortcut) and first (the general path).
      let last: [UInt8] = ProtobufWire.message(
        head: try head.serializedBytes(), field: 7, payload: payload)
      head.payload = Data(payload.bytes)
      let general: [UInt8] = try head.serializedBytes()
      #expect(throws: RPCError.self) { try DataRequestDeserializer().deserialize(last) }
      #expect(throws: RPCError.self) { try DataRequestDeserializer().deserialize(general) }
    }
  }

  @Test("a reply's error becomes the typed TransportError")
  func replyErrors() throws {
    let stale = DataReply.error(.staleEpoch, message: "ahead", serverEpoch: 12)
    #expect(throws: TransportError.self) { try stale.payload(from: "a") }
    do {
      _ = try stale.payload(from: "a")
    } catch let error as TransportError {
      #expect(error.code == .staleEpoch && error.serverEpoch == 12)
    }
    do {
      _ = try DataReply.error(.messageTooLarge, message: "big").payload(from: "a")
    } catch let error as TransportError {
      #expect(error.code == .messageTooLarge)
    }
    do {
      _ = try DataReply.error(.unavailable, message: "not here").payload(from: "a")
    } catch let error as TransportError {
      #expect(error.code == .unavailable)
    }
    #expect(try DataReply.payload([7]).payload(from: "a") == [7])
  }

  @Test("the payload shortcut takes only a single, last, well-formed field")
  func trailingFieldShortcut() {
    #expect(trailing([0x3a, 0x02, 1, 2]) == [0, 2, 4])
    // A varint field (1 = 150) before the payload.
    #expect(trailing([0x08, 0x96, 0x01, 0x3a, 0x00]) == [3, 5, 5])
    #expect(trailing([0x3a, 0x05, 1, 2]) == nil, "length beyond the end")
    #expect(trailing([0x3a, 0x01, 1, 0x3a, 0x01, 2]) == nil, "twice")
    #expect(trailing([0x3a, 0x01, 1, 0x08, 0x01]) == nil, "not last")
    #expect(trailing([0x38, 0x01]) == nil, "field 7 as a varint")
    #expect(trailing([0x08, 0x80]) == nil, "truncated varint")
    #expect(trailing([0x0a, 0x01, 9]) == nil, "absent")
    #expect(trailing([]) == nil)
  }

  @Test("varints: sizes and round trips at the edges")
  func varints() {
    for value: UInt64 in [0, 1, 127, 128, 300, 1 << 35, .max] {
      var buffer = [UInt8](repeating: 0, count: 10)
      var written = 0
      buffer.withUnsafeMutableBytes { ProtobufWire.writeVarint(value, into: $0, at: &written) }
      #expect(written == ProtobufWire.varintSize(value))
      var read = 0
      let back = buffer.withUnsafeBytes { ProtobufWire.readVarint($0, at: &read) }
      #expect(back == value && read == written)
    }
    #expect(ProtobufWire.varintSize(127) == 1 && ProtobufWire.varintSize(128) == 2)
    #expect(ProtobufWire.varintSize(.max) == 10)
  }
}

@Suite("Data transport wire compatibility", .serialized)
struct DataTransportCompatibilityTests {
  /// Runs `body` with a stock gRPC client (SwiftProtobuf coders, the generated stubs)
  /// connected to a ``GRPCTransport`` server whose handler echoes the payload reversed.
  private func withStockClient(
    _ body: (Taskgraph_Transport_V1_DataTransport.Client<HTTP2ClientTransport.Posix>)
      async throws -> Void
  ) async throws {
    let transport = GRPCTransport()
    let server = try await transport.startServer(host: "127.0.0.1") { request in
      #expect(request.job == "job" && request.from == 2 && request.method == "m")
      return Payload(request.payload.bytes.reversed())
    }
    let port = try #require((server as? GRPCTransportServer)?.port)
    let client = GRPCClient(
      transport: try HTTP2ClientTransport.Posix(
        target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext))
    let connections = Task { try await client.runConnections() }
    do {
      try await body(Taskgraph_Transport_V1_DataTransport.Client(wrapping: client))
    } catch {
      Issue.record(error)
    }
    client.beginGracefulShutdown()
    _ = try? await connections.value
    await server.stop()
    await transport.close()
  }

  private func message(call: UInt64, payload: [UInt8]) -> Taskgraph_Transport_V1_DataRequestMessage
  {
    var message = Taskgraph_Transport_V1_DataRequestMessage()
    message.job = "job"
    message.from = 2
    message.to = 1
    message.epoch = 3
    message.id = 4
    message.method = "m"
    message.payload = Data(payload)
    message.call = call
    return message
  }

  @Test("a unary Request from a stock client is served")
  func unaryRequest() async throws {
    try await withStockClient { client in
      let response = try await client.request(message(call: 0, payload: [1, 2, 3]))
      #expect(response.payload == Data([3, 2, 1]))
    }
  }

  @Test("an Exchange stream from a stock client is served, replies numbered")
  func exchange() async throws {
    try await withStockClient { client in
      let replies = try await client.exchange(
        requestProducer: { writer in
          for call: UInt64 in 1...3 {
            try await writer.write(self.message(call: call, payload: [UInt8(call), 0]))
          }
        },
        onResponse: { response in
          var replies: [UInt64: Data] = [:]
          for try await reply in response.messages { replies[reply.call] = reply.payload }
          return replies
        })
      #expect(replies == [1: Data([0, 1]), 2: Data([0, 2]), 3: Data([0, 3])])
    }
  }
}

/// The doubles of `part` if it is doubles read in place (`shared`) or an array of them.
private func doubles(_ part: Payload.Part, shared: Bool) -> [Double]? {
  switch part {
  case .sharedDoubles(let d) where shared: d.array
  case .doubles(let d) where !shared: d
  default: nil
  }
}

/// The bytes of `backing` from `offset` on, as shared bytes.
private struct OffsetBytes: SharedBytes {
  let backing: [UInt8]
  let offset: Int

  func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try backing.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[offset...])) }
  }
}
