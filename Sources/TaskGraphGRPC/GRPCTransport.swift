import GRPCCore
import GRPCNIOTransportHTTP2
import NIOCore
import Synchronization
import TaskGraph

/// A ``Transport`` over gRPC (grpc-swift-2, HTTP/2 on SwiftNIO, plaintext): data requests
/// travel as messages of one long-lived `Exchange` stream per peer.
///
/// Clients are cached per peer address, so every request to a peer reuses one HTTP/2
/// connection and one stream on it; many requests are in flight on the stream at once,
/// paired with their replies by number. A stream or connection that fails is dropped and
/// the next request opens afresh. Call ``close()`` to end the cached connections (servers
/// are stopped individually).
public final class GRPCTransport: Transport {
  /// The limits and tuning this transport's servers and clients use.
  public let configuration: GRPCTransportConfiguration

  private typealias Client = GRPCClient<HTTP2ClientTransport.Posix>
  private struct Peer {
    var client: Client
    var runner: Task<Void, Never>
    var exchange: ExchangeStream
  }
  private struct State {
    var peers: [String: Peer] = [:]
    var retired: [Task<Void, Never>] = []
    var closed = false
  }
  private let state = Mutex(State())

  /// Creates a transport; nothing is dialled or bound until used.
  public init(configuration: GRPCTransportConfiguration = .defaults) {
    self.configuration = configuration
  }

  /// Starts a server on `host` and a free port; its ``GRPCTransportServer/address`` is
  /// `host:port`.
  public func startServer(host: String, handler: @escaping DataRequestHandler) async throws
    -> any TransportServer
  {
    try await GRPCTransportServer.start(
      host: host, configuration: configuration, handler: handler)
  }

  /// Sends `request` to `address` (`host:port`) with a deadline of `timeout`.
  ///
  /// - Throws: `TransportError`: `unavailable` (no server, or the connection dropped),
  ///   `deadlineExceeded`, `staleEpoch` (with the server's epoch), `messageTooLarge`
  ///   (request or response above ``GRPCTransportConfiguration/maxMessageBytes``),
  ///   `handlerFailed` (the serving handler threw).
  public func send(_ request: DataRequest, to address: String, timeout: Duration) async throws
    -> Payload
  {
    guard request.payload.count <= configuration.maxMessageBytes else {
      throw TransportError(
        code: .messageTooLarge,
        message:
          "request payload of \(request.payload.count) bytes exceeds the limit of \(configuration.maxMessageBytes)"
      )
    }
    let (client, exchange) = try peer(address)
    let reply: DataReply
    do {
      reply = try await exchange.call(request, timeout: timeout)
    } catch let error as TransportError {
      if error.code == .unavailable { dropPeer(address, client) }
      throw error
    }
    return try reply.payload(from: address)
  }

  /// Closes every cached connection and waits for their background tasks.
  public func close() async {
    let (peers, retired) = state.withLock { state in
      state.closed = true
      defer {
        state.peers = [:]
        state.retired = []
      }
      return (state.peers, state.retired)
    }
    for peer in peers.values { await peer.exchange.close() }
    for peer in peers.values { peer.client.beginGracefulShutdown() }
    for runner in peers.values.map(\.runner) + retired {
      runner.cancel()
      await runner.value
    }
  }

  /// The cached client of `address` and its open stream, made on first use (or after
  /// the stream ended).
  private func peer(_ address: String) throws -> (Client, ExchangeStream) {
    var retired: ExchangeStream?
    defer { retired?.finish() }
    return try state.withLock { state in
      if state.closed {
        throw TransportError(code: .unavailable, message: "transport is closed")
      }
      if let peer = state.peers[address] {
        if !peer.exchange.hasEnded { return (peer.client, peer.exchange) }
        retired = peer.exchange
        let exchange = ExchangeStream(
          client: peer.client, address: address, options: streamOptions)
        state.peers[address]?.exchange = exchange
        return (peer.client, exchange)
      }
      guard let target = GRPCAddress.target(address) else {
        throw TransportError(
          code: .unavailable, message: "'\(address)' is not a HOST:PORT address")
      }
      let tuning = configuration
      let transport = try HTTP2ClientTransport.Posix(
        target: target, transportSecurity: .plaintext,
        config: .defaults { config in
          config.http2.targetWindowSize = tuning.targetWindowBytes
          config.http2.maxFrameSize = tuning.maxFrameBytes
          config.channelDebuggingCallbacks.onCreateTCPConnection = { channel in
            channel.setOption(ChannelOptions.recvAllocator, value: tuning.readAllocator)
          }
          config.backoff = .init(
            initial: .milliseconds(20), max: .seconds(1), multiplier: 1.6, jitter: 0.2)
        })
      let client = GRPCClient(transport: transport)
      let runner = Task {
        // Ends when the client is shut down or cancelled; failures surface on calls.
        _ = try? await client.runConnections()
      }
      let exchange = ExchangeStream(client: client, address: address, options: streamOptions)
      state.peers[address] = Peer(client: client, runner: runner, exchange: exchange)
      return (client, exchange)
    }
  }

  /// The options of an `Exchange` stream: no deadline (each request has its own) and
  /// the message limits.
  private var streamOptions: CallOptions {
    var options = CallOptions.defaults
    options.waitForReady = false
    options.maxRequestMessageBytes = configuration.wireLimit
    options.maxResponseMessageBytes = configuration.wireLimit
    return options
  }

  /// Forgets the cached client of `address` if it is still `client`, closing it.
  private func dropPeer(_ address: String, _ client: Client) {
    let dropped: Peer? = state.withLock { state in
      guard let peer = state.peers[address], peer.client === client else { return nil }
      state.peers[address] = nil
      state.retired.append(peer.runner)
      // Retired runners end once their calls have; keep only the newest few handles.
      if state.retired.count > 16 { state.retired.removeFirst().cancel() }
      return peer
    }
    // The stream must end for the graceful shutdown to finish.
    dropped?.exchange.finish()
    dropped?.client.beginGracefulShutdown()
  }

  static func transportError(_ error: RPCError, address: String) -> TransportError {
    switch error.code {
    case .deadlineExceeded:
      return TransportError(
        code: .deadlineExceeded, message: "no response from \(address) in time: \(error.message)")
    case .resourceExhausted:
      return TransportError(
        code: .messageTooLarge, message: "message to or from \(address) too large: \(error.message)"
      )
    default:
      return TransportError(
        code: .unavailable, message: "\(address) unavailable (\(error.code)): \(error.message)")
    }
  }
}

/// Parsing of `host:port` addresses.
enum GRPCAddress {
  /// `host` and `port` of `host:port` or `[v6]:port`, or nil.
  static func split(_ address: String) -> (host: String, port: Int)? {
    guard let colon = address.lastIndex(of: ":"),
      let port = Int(address[address.index(after: colon)...]), (0...65535).contains(port)
    else { return nil }
    var host = address[..<colon]
    if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
    guard !host.isEmpty else { return nil }
    return (String(host), port)
  }

  static func target(_ address: String) -> (any ResolvableTarget)? {
    guard let (host, port) = split(address) else { return nil }
    if host.contains(":") { return ResolvableTargets.IPv6.ipv6(address: host, port: port) }
    if host.split(separator: ".").count == 4, host.allSatisfy({ $0.isNumber || $0 == "." }) {
      return ResolvableTargets.IPv4.ipv4(address: host, port: port)
    }
    return ResolvableTargets.DNS.dns(host: host, port: port)
  }
}
