/// A data request between two tasks of a job.
///
/// `(job, from, epoch, id)` identifies a request: the runtime uses it to deliver each
/// response exactly once and to drop requests and responses of a stale epoch.
public struct DataRequest: Sendable, Equatable {
  /// The job's name.
  public var job: String
  /// The requesting task's id.
  public var from: Int
  /// The serving task's id.
  public var to: Int
  /// The requester's epoch when it sent the request.
  public var epoch: UInt64
  /// A per-requester identifier, unique within (job, from, epoch).
  public var id: UInt64
  /// What is requested, interpreted by the serving task (e.g. `"parameters"`).
  public var method: String
  /// Request arguments.
  public var payload: Payload

  public init(
    job: String, from: Int, to: Int, epoch: UInt64, id: UInt64, method: String,
    payload: Payload = []
  ) {
    self.job = job
    self.from = from
    self.to = to
    self.epoch = epoch
    self.id = id
    self.method = method
    self.payload = payload
  }
}

/// Serves the data requests that reach one node. Throwing `TransportError.staleEpoch`
/// refuses a request of an epoch the server has left.
public typealias DataRequestHandler = @Sendable (DataRequest) async throws -> Payload

/// A running server of a transport; `address` is what peers pass to `send`.
public protocol TransportServer: Sendable {
  /// The address peers reach this server at (e.g. `127.0.0.1:50123`, or a name in-process).
  var address: String { get }
  /// Stops serving; in-flight requests fail with `unavailable`.
  func stop() async
}

/// Moves data requests between nodes: in-process for one process, gRPC between processes.
///
/// A transport makes one attempt per `send`; retries, exactly-once delivery and epoch
/// checks belong to the runtime above it.
public protocol Transport: Sendable {
  /// Starts serving requests with `handler`, listening on `host` (a free port is chosen).
  func startServer(host: String, handler: @escaping DataRequestHandler) async throws
    -> any TransportServer
  /// Sends `request` to the server at `address` and returns its response payload, or
  /// throws a `TransportError` (`unavailable`, `deadlineExceeded`, `staleEpoch`, …).
  func send(_ request: DataRequest, to address: String, timeout: Duration) async throws
    -> Payload
}

/// An error from a transport.
public struct TransportError: Error, CustomStringConvertible, Sendable {
  /// What went wrong, in a form code can switch on.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Wrapped: Hashable, Sendable {
      case unavailable, deadlineExceeded, staleEpoch, messageTooLarge, handlerFailed
    }
    private let wrapped: Wrapped
    private init(_ wrapped: Wrapped) { self.wrapped = wrapped }
    /// The peer cannot be reached (or went away during the call): retry, perhaps elsewhere.
    public static let unavailable = Code(.unavailable)
    /// No response within the timeout.
    public static let deadlineExceeded = Code(.deadlineExceeded)
    /// The server refused the request: its epoch differs from the request's.
    public static let staleEpoch = Code(.staleEpoch)
    /// The request or response exceeds the configured maximum message size.
    public static let messageTooLarge = Code(.messageTooLarge)
    /// The serving handler threw.
    public static let handlerFailed = Code(.handlerFailed)
    public var description: String { String(describing: wrapped) }
  }

  /// The error code.
  public var code: Code
  /// A human-readable explanation.
  public var message: String
  /// For `staleEpoch`: the server's current epoch.
  public var serverEpoch: UInt64?

  public init(code: Code, message: String, serverEpoch: UInt64? = nil) {
    self.code = code
    self.message = message
    self.serverEpoch = serverEpoch
  }

  /// A refusal of a request from another epoch.
  public static func staleEpoch(server: UInt64, request: UInt64) -> TransportError {
    TransportError(
      code: .staleEpoch, message: "request of epoch \(request) refused at epoch \(server)",
      serverEpoch: server)
  }

  public var description: String { "\(message) (\(code))" }
}
