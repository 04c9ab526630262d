import GRPCCore
import GRPCNIOTransportHTTP2
import TaskGraph

/// A running gRPC data-request server, started by ``GRPCTransport/startServer(host:handler:)``.
public final class GRPCTransportServer: TransportServer {
  /// `host:port` as bound, for peers to pass to ``GRPCTransport/send(_:to:timeout:)``.
  public let address: String
  /// The bound port.
  public let port: Int
  private let server: GRPCServer<HTTP2ServerTransport.Posix>
  private let runner: Task<Void, Never>

  private init(
    address: String, port: Int, server: GRPCServer<HTTP2ServerTransport.Posix>,
    runner: Task<Void, Never>
  ) {
    self.address = address
    self.port = port
    self.server = server
    self.runner = runner
  }

  static func start(
    host: String, configuration: GRPCTransportConfiguration, handler: @escaping DataRequestHandler
  ) async throws -> GRPCTransportServer {
    let transport = HTTP2ServerTransport.Posix(
      address: host.contains(":") ? .ipv6(host: host, port: 0) : .ipv4(host: host, port: 0),
      transportSecurity: .plaintext,
      config: .defaults { config in
        config.rpc.maxRequestPayloadSize = configuration.wireLimit
        config.http2.targetWindowSize = configuration.targetWindowBytes
        config.http2.maxFrameSize = configuration.maxFrameBytes
      })
    let service = DataTransportService(
      handler: handler, maxResponseBytes: configuration.maxMessageBytes)
    let server = GRPCServer(transport: transport, services: [service])
    let runner = Task {
      // Ends when the server stops; a failure to bind surfaces in `listeningAddress`.
      _ = try? await server.serve()
    }
    let port: Int
    do {
      let bound = try await transport.listeningAddress
      guard let boundPort = bound.ipv4?.port ?? bound.ipv6?.port else {
        throw TransportError(code: .unavailable, message: "server bound to \(bound), not TCP")
      }
      port = boundPort
    } catch {
      runner.cancel()
      throw TransportError(
        code: .unavailable, message: "cannot listen on \(host): \(error)")
    }
    let shown = host.contains(":") ? "[\(host)]" : host
    return GRPCTransportServer(
      address: "\(shown):\(port)", port: port, server: server, runner: runner)
  }

  /// Stops serving at once: in-flight requests fail with `unavailable` at their callers.
  public func stop() async {
    server.beginGracefulShutdown()
    runner.cancel()
    await runner.value
  }
}

/// The generated service's implementation: decodes, calls the handler, encodes.
struct DataTransportService: Taskgraph_Transport_V1_DataTransport.SimpleServiceProtocol {
  let handler: DataRequestHandler
  let maxResponseBytes: Int

  func request(
    request: Taskgraph_Transport_V1_DataRequestMessage, context: ServerContext
  ) async throws -> Taskgraph_Transport_V1_DataResponseMessage {
    let dataRequest = DataRequestCoding.request(request)
    let payload: [UInt8]
    do {
      payload = try await handler(dataRequest)
    } catch let error as TransportError where error.code == .staleEpoch {
      return DataRequestCoding.response(
        error: .staleEpoch, message: error.message, serverEpoch: error.serverEpoch ?? 0)
    } catch {
      return DataRequestCoding.response(
        error: .handlerFailed, message: "handler of '\(request.method)' failed: \(error)")
    }
    guard payload.count <= maxResponseBytes else {
      return DataRequestCoding.response(
        error: .messageTooLarge,
        message:
          "response of \(payload.count) bytes exceeds the limit of \(maxResponseBytes)")
    }
    return DataRequestCoding.response(payload: payload)
  }
}
