import Synchronization

/// The embedded transport: servers live in a registry shared by every copy of the
/// transport, under generated names (`inproc-1`, …); `send` calls the serving handler
/// directly, with no serialization.
///
/// A stopped server is removed from the registry, so later sends fail with `unavailable`,
/// and requests in flight when it stopped fail with `unavailable` too.
public struct InProcessTransport: Transport {
  private let registry: Registry

  /// Creates a transport with its own registry; copies of it share the registry (and so
  /// reach each other's servers). Separate registries keep concurrent jobs (or tests) apart.
  public init() { registry = Registry() }

  /// A transport over the process-wide registry, for components that are wired
  /// independently but must reach each other.
  public static let shared = InProcessTransport()

  /// Starts a server for `handler`.
  public func startServer(host: String, handler: @escaping DataRequestHandler) async throws
    -> any TransportServer
  {
    let server = registry.register(host: host, handler: handler)
    return server
  }

  /// Sends `request` to the server at `address`, with at most `timeout` to answer.
  public func send(_ request: DataRequest, to address: String, timeout: Duration) async throws
    -> Payload
  {
    guard let server = registry.lookup(address) else {
      throw TransportError(code: .unavailable, message: "no in-process server at \(address)")
    }
    let response: Payload
    do {
      response = try await withDeadline(
        timeout,
        onTimeout: {
          TransportError(
            code: .deadlineExceeded, message: "no response from \(address) within \(timeout)")
        },
        { try await server.handler(request) })
    } catch  where !server.isRunning {
      throw TransportError(code: .unavailable, message: "server \(address) stopped")
    } catch let error as TransportError {
      throw error
    } catch let error as CancellationError {
      throw error
    } catch {
      throw TransportError(code: .handlerFailed, message: "handler at \(address) threw: \(error)")
    }
    guard server.isRunning else {
      throw TransportError(code: .unavailable, message: "server \(address) stopped")
    }
    return response
  }

  /// Addresses of the servers currently registered (for diagnostics).
  public var addresses: [String] { registry.addresses }
}

extension InProcessTransport {
  fileprivate final class Registry: Sendable {
    private struct State {
      var servers: [String: Server] = [:]
      var next = 1
    }
    private let state = Mutex(State())

    func register(host: String, handler: @escaping DataRequestHandler) -> Server {
      state.withLock { s in
        let name = "inproc-\(host.isEmpty ? "local" : host)-\(s.next)"
        s.next += 1
        let server = Server(address: name, handler: handler, registry: self)
        s.servers[name] = server
        return server
      }
    }

    func lookup(_ address: String) -> Server? {
      state.withLock { $0.servers[address] }
    }

    func remove(_ address: String) {
      _ = state.withLock { $0.servers.removeValue(forKey: address) }
    }

    var addresses: [String] { state.withLock { $0.servers.keys.sorted() } }
  }

  fileprivate final class Server: TransportServer {
    let address: String
    let handler: DataRequestHandler
    private let running = Atomic<Bool>(true)
    private let registry: Registry

    init(address: String, handler: @escaping DataRequestHandler, registry: Registry) {
      self.address = address
      self.handler = handler
      self.registry = registry
    }

    var isRunning: Bool { running.load(ordering: .acquiring) }

    func stop() async {
      running.store(false, ordering: .releasing)
      registry.remove(address)
    }
  }
}
