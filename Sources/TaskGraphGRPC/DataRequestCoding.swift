import GRPCCore
import SwiftProtobuf
import TaskGraph

/// What the server answers to a data request: the payload, or a typed refusal.
enum DataReply: Sendable, Equatable {
  case payload(Payload)
  case error(Taskgraph_Transport_V1_DataError)

  /// A refusal with `code`.
  static func error(
    _ code: Taskgraph_Transport_V1_DataError.Code, message: String, serverEpoch: UInt64 = 0
  ) -> DataReply {
    var error = Taskgraph_Transport_V1_DataError()
    error.code = code
    error.message = message
    error.serverEpoch = serverEpoch
    return .error(error)
  }

  /// The payload, or the typed error the reply carries.
  func payload(from address: String) throws -> Payload {
    switch self {
    case .payload(let payload):
      return payload
    case .error(let error):
      switch error.code {
      case .staleEpoch:
        throw TransportError(
          code: .staleEpoch, message: "\(address): \(error.message)",
          serverEpoch: error.serverEpoch)
      case .messageTooLarge:
        throw TransportError(code: .messageTooLarge, message: "\(address): \(error.message)")
      case .unavailable:
        throw TransportError(code: .unavailable, message: "\(address): \(error.message)")
      default:
        throw TransportError(code: .handlerFailed, message: "\(address): \(error.message)")
      }
    }
  }
}

/// A message with its call number: on an `Exchange` stream the number pairs a response
/// with its request; a unary `Request` call leaves it 0.
struct Numbered<Message: Sendable>: Sendable {
  var call: UInt64
  var message: Message
}

// The transport's messages are `taskgraph_transport.proto`'s `DataRequestMessage` and
// `DataResponseMessage` on the wire. The coders below write the payload field last and by
// hand, and read it by hand when it comes last, so a payload is copied once on each side
// instead of through `Data`, and its parts of doubles are read straight into arrays of
// doubles; the other fields go through SwiftProtobuf.

/// Field numbers of the payload in `DataRequestMessage` and `DataResponseMessage`.
private let requestPayloadField = 7
private let replyPayloadField = 1

/// Encodes a numbered ``DataRequest`` as a `DataRequestMessage`.
struct DataRequestSerializer: MessageSerializer {
  func serialize<Bytes: GRPCContiguousBytes>(_ numbered: Numbered<DataRequest>) throws -> Bytes {
    let request = numbered.message
    var head = Taskgraph_Transport_V1_DataRequestMessage()
    head.job = request.job
    head.from = Int64(request.from)
    head.to = Int64(request.to)
    head.epoch = request.epoch
    head.id = request.id
    head.method = request.method
    head.call = numbered.call
    head.payloadParts = ProtobufWire.layout(of: request.payload)
    let encoded: [UInt8]
    do {
      encoded = try head.serializedBytes()
    } catch {
      throw RPCError(code: .invalidArgument, message: "cannot encode a data request", cause: error)
    }
    return ProtobufWire.message(
      head: encoded, field: requestPayloadField, payload: request.payload)
  }
}

/// Decodes a `DataRequestMessage` into a numbered ``DataRequest``.
struct DataRequestDeserializer: MessageDeserializer {
  func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> Numbered<DataRequest> {
    do {
      return try bytes.withUnsafeBytes { raw in
        let head: Taskgraph_Transport_V1_DataRequestMessage
        let payload: Payload
        if let field = ProtobufWire.trailingField(requestPayloadField, in: raw) {
          head = try Taskgraph_Transport_V1_DataRequestMessage(
            serializedBytes: ProtobufWire.array(raw, 0..<field.start))
          payload = try ProtobufWire.payload(
            raw, field.content, layout: head.payloadParts, shared: ReceivedBytes.holding(bytes))
        } else {
          head = try Taskgraph_Transport_V1_DataRequestMessage(
            serializedBytes: ProtobufWire.array(raw, 0..<raw.count))
          payload = try head.payload.withUnsafeBytes {
            try ProtobufWire.payload($0, 0..<$0.count, layout: head.payloadParts)
          }
        }
        let request = DataRequest(
          job: head.job, from: Int(head.from), to: Int(head.to), epoch: head.epoch, id: head.id,
          method: head.method, payload: payload)
        return Numbered(call: head.call, message: request)
      }
    } catch {
      throw RPCError(code: .invalidArgument, message: "cannot decode a data request", cause: error)
    }
  }
}

/// Encodes a numbered ``DataReply`` as a `DataResponseMessage`.
struct DataReplySerializer: MessageSerializer {
  func serialize<Bytes: GRPCContiguousBytes>(_ numbered: Numbered<DataReply>) throws -> Bytes {
    var message = Taskgraph_Transport_V1_DataResponseMessage()
    message.call = numbered.call
    let payload: Payload
    switch numbered.message {
    case .payload(let parts):
      payload = parts
      message.payloadParts = ProtobufWire.layout(of: parts)
    case .error(let error):
      message.error = error
      payload = Payload()
    }
    let encoded: [UInt8]
    do {
      encoded = try message.serializedBytes()
    } catch {
      throw RPCError(code: .invalidArgument, message: "cannot encode a reply", cause: error)
    }
    if case .error = numbered.message { return Bytes(encoded) }
    // The payload is a oneof member: written even when empty, so its presence shows.
    return ProtobufWire.message(head: encoded, field: replyPayloadField, payload: payload)
  }
}

/// Decodes a `DataResponseMessage` into a numbered ``DataReply``.
struct DataReplyDeserializer: MessageDeserializer {
  func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> Numbered<DataReply> {
    do {
      return try bytes.withUnsafeBytes { raw in
        if let field = ProtobufWire.trailingField(replyPayloadField, in: raw) {
          // The payload comes last, so it is the oneof's value whatever precedes it.
          let head = try Taskgraph_Transport_V1_DataResponseMessage(
            serializedBytes: ProtobufWire.array(raw, 0..<field.start))
          let payload = try ProtobufWire.payload(
            raw, field.content, layout: head.payloadParts, shared: ReceivedBytes.holding(bytes))
          return Numbered(call: head.call, message: .payload(payload))
        }
        let message = try Taskgraph_Transport_V1_DataResponseMessage(
          serializedBytes: ProtobufWire.array(raw, 0..<raw.count))
        switch message.result {
        case .payload(let data):
          let payload = try data.withUnsafeBytes {
            try ProtobufWire.payload($0, 0..<$0.count, layout: message.payloadParts)
          }
          return Numbered(call: message.call, message: .payload(payload))
        case .error(let error): return Numbered(call: message.call, message: .error(error))
        // Nothing set: an empty payload from a writer that omits it.
        case nil: return Numbered(call: message.call, message: .payload(Payload()))
        }
      }
    } catch {
      throw RPCError(code: .invalidArgument, message: "cannot decode a reply", cause: error)
    }
  }
}
