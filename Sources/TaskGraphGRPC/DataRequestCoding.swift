import Foundation
import TaskGraph

/// Conversions between the runtime's values and the transport's protobuf messages.
enum DataRequestCoding {
  static func message(_ request: DataRequest) -> Taskgraph_Transport_V1_DataRequestMessage {
    var message = Taskgraph_Transport_V1_DataRequestMessage()
    message.job = request.job
    message.from = Int64(request.from)
    message.to = Int64(request.to)
    message.epoch = request.epoch
    message.id = request.id
    message.method = request.method
    message.payload = Data(request.payload)
    return message
  }

  static func request(_ message: Taskgraph_Transport_V1_DataRequestMessage) -> DataRequest {
    DataRequest(
      job: message.job, from: Int(message.from), to: Int(message.to), epoch: message.epoch,
      id: message.id, method: message.method, payload: [UInt8](message.payload))
  }

  static func response(payload: [UInt8]) -> Taskgraph_Transport_V1_DataResponseMessage {
    var response = Taskgraph_Transport_V1_DataResponseMessage()
    response.payload = Data(payload)
    return response
  }

  static func response(
    error code: Taskgraph_Transport_V1_DataError.Code, message: String, serverEpoch: UInt64 = 0
  ) -> Taskgraph_Transport_V1_DataResponseMessage {
    var error = Taskgraph_Transport_V1_DataError()
    error.code = code
    error.message = message
    error.serverEpoch = serverEpoch
    var response = Taskgraph_Transport_V1_DataResponseMessage()
    response.error = error
    return response
  }

  /// The payload of `response`, or the typed error it carries.
  static func payload(
    of response: Taskgraph_Transport_V1_DataResponseMessage, from address: String
  ) throws -> [UInt8] {
    switch response.result {
    case .payload(let data):
      return [UInt8](data)
    case .error(let error):
      switch error.code {
      case .staleEpoch:
        throw TransportError(
          code: .staleEpoch, message: "\(address): \(error.message)",
          serverEpoch: error.serverEpoch)
      case .messageTooLarge:
        throw TransportError(code: .messageTooLarge, message: "\(address): \(error.message)")
      default:
        throw TransportError(code: .handlerFailed, message: "\(address): \(error.message)")
      }
    case nil:
      // proto3 drops an empty `bytes` field of a oneof only if unset; treat as empty.
      return []
    }
  }
}
