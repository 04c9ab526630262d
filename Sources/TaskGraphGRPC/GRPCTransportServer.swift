import GRPCCore
import GRPCNIOTransportHTTP2
import NIOCore
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
        config.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
          channel.setOption(ChannelOptions.recvAllocator, value: configuration.readAllocator)
        }
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

/// The data-request service of `taskgraph_transport.proto`: unary `Request` calls and
/// `Exchange` streams, with coders that copy the payload once (see
/// ``DataRequestSerializer``).
struct DataTransportService: RegistrableRPCService {
  let handler: DataRequestHandler
  let maxResponseBytes: Int

  func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
    router.registerHandler(
      forMethod: Taskgraph_Transport_V1_DataTransport.Method.Request.descriptor,
      deserializer: DataRequestDeserializer(), serializer: DataReplySerializer()
    ) { request, _ in
      let single = try await ServerRequest(stream: request)
      let reply = await self.reply(to: single.message.message)
      return StreamingServerResponse(
        single: ServerResponse(message: Numbered(call: 0, message: reply), metadata: [:]))
    }
    router.registerHandler(
      forMethod: Taskgraph_Transport_V1_DataTransport.Method.Exchange.descriptor,
      deserializer: DataRequestDeserializer(), serializer: DataReplySerializer()
    ) { request, _ in
      StreamingServerResponse { writer in
        try await self.exchange(request.messages, writer: writer)
        return [:]
      }
    }
  }

  /// Serves the requests of one `Exchange` stream concurrently, writing each reply as it
  /// is ready, until the client closes its side and every reply is written.
  private func exchange(
    _ requests: RPCAsyncSequence<Numbered<DataRequest>, any Error>,
    writer: RPCWriter<Numbered<DataReply>>
  ) async throws {
    let (replies, sink) = AsyncStream<Numbered<DataReply>>.makeStream()
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask {
        for await reply in replies { try await writer.write(reply) }
      }
      try await withThrowingDiscardingTaskGroup { serving in
        for try await request in requests {
          serving.addTask {
            let reply = await self.reply(to: request.message)
            sink.yield(Numbered(call: request.call, message: reply))
          }
        }
      }
      sink.finish()
    }
  }

  /// Calls the handler; its refusals and failures become typed error replies.
  func reply(to request: DataRequest) async -> DataReply {
    let payload: Payload
    do {
      payload = try await handler(request)
    } catch let error as TransportError where error.code == .staleEpoch {
      return .error(.staleEpoch, message: error.message, serverEpoch: error.serverEpoch ?? 0)
    } catch let error as TransportError where error.code == .unavailable {
      // The node does not serve the task now: the requester looks its address up again.
      return .error(.unavailable, message: error.message)
    } catch {
      return .error(.handlerFailed, message: "handler of '\(request.method)' failed: \(error)")
    }
    guard payload.count <= maxResponseBytes else {
      return .error(
        .messageTooLarge,
        message: "response of \(payload.count) bytes exceeds the limit of \(maxResponseBytes)")
    }
    return .payload(payload)
  }
}
