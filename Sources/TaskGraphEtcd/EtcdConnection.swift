import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization
import TaskGraph

/// The gRPC client type every etcd connection uses.
typealias EtcdGRPCClient = GRPCClient<HTTP2ClientTransport.Posix>

/// One replaceable gRPC client (one HTTP/2 connection) to an etcd member.
///
/// swift-nio-http2 closes a connection on which etcd sent too many PINGs (GOAWAY
/// ENHANCE_YOUR_CALM, see FINDINGS), and a restarted etcd leaves the old connection dead:
/// after a transient failure the caller calls ``replace(generation:)`` and the next
/// ``client()`` starts a fresh client. The connection owns the `runConnections()` task of
/// every client it made and ends them all in ``close()``.
final class EtcdConnection: Sendable {
  private struct Live {
    var client: EtcdGRPCClient
    var generation: Int
    var calls = 0
  }

  /// Calls after which a client is replaced by a fresh one before its connection is used
  /// again. etcd sends about one PING per call and swift-nio-http2 closes a connection
  /// after 200 of them in 30 s (GOAWAY ENHANCE_YOUR_CALM), failing whatever is in flight,
  /// which a retry may then apply twice. Rotating well before that avoids the drop.
  static let callsPerConnection = 100

  private struct State {
    var live: Live?
    var nextGeneration = 0
    var runners: [Int: Task<Void, Never>] = [:]
    var closed = false
  }

  private let host: String
  private let port: Int
  private let endpoint: String
  private let state = Mutex(State())

  /// Creates a connection to `configuration.endpoint`; nothing is dialled until a call.
  init(_ configuration: EtcdConfiguration) throws {
    guard let (host, port) = configuration.hostAndPort else {
      throw CoordinatorError(
        code: .invalidArgument,
        message: "etcd endpoint '\(configuration.endpoint)' is not of the form http://HOST:PORT")
    }
    self.host = host
    self.port = port
    self.endpoint = configuration.endpoint
  }

  /// The current client and its generation, made and started on first use.
  func client() throws -> (client: EtcdGRPCClient, generation: Int) {
    var retired: EtcdGRPCClient?
    defer { retired?.beginGracefulShutdown() }
    return try state.withLock { state in
      if state.closed {
        throw CoordinatorError(code: .unavailable, message: "etcd coordinator is closed")
      }
      if let live = state.live {
        if live.calls < Self.callsPerConnection {
          state.live?.calls += 1
          return (live.client, live.generation)
        }
        // Worn out: let it finish its calls and close; start a fresh one below.
        retired = live.client
        state.live = nil
      }
      let transport = try HTTP2ClientTransport.Posix(
        target: Self.target(host: host, port: port), transportSecurity: .plaintext,
        config: .defaults { config in
          // Reconnect quickly after an etcd restart; calls are retried by the caller.
          config.backoff = .init(
            initial: .milliseconds(50), max: .seconds(1), multiplier: 1.6, jitter: 0.2)
        })
      let client = GRPCClient(transport: transport)
      let generation = state.nextGeneration
      state.nextGeneration += 1
      state.live = Live(client: client, generation: generation, calls: 1)
      state.runners[generation] = Task {
        // Errors here mean the connection ended; calls on it fail and are retried elsewhere.
        _ = try? await client.runConnections()
      }
      return (client, generation)
    }
  }

  /// Retires the client of `generation` if it is still the current one: it finishes its
  /// in-flight calls and closes, and the next ``client()`` makes a fresh one.
  func replace(generation: Int) {
    let retired: EtcdGRPCClient? = state.withLock { state in
      guard let live = state.live, live.generation == generation else { return nil }
      state.live = nil
      return live.client
    }
    retired?.beginGracefulShutdown()
    pruneFinishedRunners()
  }

  /// Closes every client and waits for their tasks to end.
  func close() async {
    let (live, runners) = state.withLock { state in
      state.closed = true
      defer {
        state.live = nil
        state.runners = [:]
      }
      return (state.live, state.runners)
    }
    live?.client.beginGracefulShutdown()
    for runner in runners.values {
      runner.cancel()
      await runner.value
    }
  }

  private func pruneFinishedRunners() {
    // Keep the handles of the newest few retired clients; older ones shut down gracefully
    // long ago, so cancelling their tasks only drops handles that are finished or stuck.
    state.withLock { state in
      let live = state.live?.generation
      let retired = state.runners.keys.filter { $0 != live }.sorted()
      guard retired.count > 8 else { return }
      for generation in retired.prefix(retired.count - 8) {
        state.runners.removeValue(forKey: generation)?.cancel()
      }
    }
  }

  private static func target(host: String, port: Int) -> any ResolvableTarget {
    if host.contains(":") { return ResolvableTargets.IPv6.ipv6(address: host, port: port) }
    if host.split(separator: ".").count == 4, host.allSatisfy({ $0.isNumber || $0 == "." }) {
      return ResolvableTargets.IPv4.ipv4(address: host, port: port)
    }
    return ResolvableTargets.DNS.dns(host: host, port: port)
  }
}
