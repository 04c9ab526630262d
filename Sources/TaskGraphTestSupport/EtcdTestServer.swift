import Foundation

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif
#if canImport(Glibc)
  import Glibc
#endif

/// A private etcd server for tests: a child `etcd` on free 127.0.0.1 client and peer ports
/// with a temporary data directory.
///
/// It can be stopped, killed with SIGKILL and restarted on the same ports and data
/// directory (to test "etcd restarts mid-job"). ``shutdown()`` stops it and removes the
/// data directory; ``withEtcdTestServer(_:)`` does that for you.
public actor EtcdTestServer {
  /// The client port.
  public nonisolated let clientPort: Int
  /// The peer (raft) port.
  public nonisolated let peerPort: Int
  /// The temporary data directory, removed by ``shutdown()``.
  public nonisolated let dataDirectory: String
  /// The etcd executable used.
  public nonisolated let executable: String
  /// How long a start or restart may take before it fails.
  public nonisolated let startTimeout: Duration

  /// The client URL, e.g. `http://127.0.0.1:40123`.
  public nonisolated var endpoint: String { "http://127.0.0.1:\(clientPort)" }

  private var process: ProcessHandle?

  private init(
    clientPort: Int, peerPort: Int, dataDirectory: String, executable: String,
    startTimeout: Duration
  ) {
    self.clientPort = clientPort
    self.peerPort = peerPort
    self.dataDirectory = dataDirectory
    self.executable = executable
    self.startTimeout = startTimeout
  }

  /// Starts etcd and waits until it answers its health check.
  ///
  /// - Parameters:
  ///   - executable: the etcd binary; defaults to `$ETCD_BINARY`, else `/usr/bin/etcd`,
  ///     else `etcd` on `PATH`.
  ///   - startTimeout: how long etcd may take to become healthy.
  ///   - parent: where the data directory is made; the temporary directory by default
  ///     (`/dev/shm` keeps etcd's log in memory, with no disk flush per write).
  /// - Throws: `EtcdTestServerError` if etcd cannot be started or does not become healthy.
  public static func start(
    executable: String? = nil, startTimeout: Duration = .seconds(15), parent: String? = nil
  ) async throws -> EtcdTestServer {
    let ports = try unusedPorts(2)
    let base = parent.map { URL(fileURLWithPath: $0) } ?? FileManager.default.temporaryDirectory
    let directory = base.appendingPathComponent("taskgraph-etcd-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(
      atPath: directory, withIntermediateDirectories: true)
    let server = EtcdTestServer(
      clientPort: ports[0], peerPort: ports[1], dataDirectory: directory,
      executable: executable ?? defaultExecutable(), startTimeout: startTimeout)
    do {
      try await server.restart()
    } catch {
      await server.shutdown()
      throw error
    }
    return server
  }

  /// Whether the etcd process is running (as far as this server knows).
  public var isRunning: Bool { process != nil }

  /// Starts etcd again on the same ports and data directory (after ``stop()`` or
  /// ``kill()``) and waits until it is healthy. Does nothing if it is running.
  public func restart() async throws {
    guard process == nil else { return }
    let name = "taskgraph-test"
    let client = "http://127.0.0.1:\(clientPort)"
    let peer = "http://127.0.0.1:\(peerPort)"
    let arguments = [
      "--name", name, "--data-dir", dataDirectory,
      "--listen-client-urls", client, "--advertise-client-urls", client,
      "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
      "--initial-cluster", "\(name)=\(peer)", "--initial-cluster-state", "new",
      "--logger=zap", "--log-level=error",
    ]
    let started: ProcessHandle
    do {
      started = try await ProcessHandle.start(executable, arguments: arguments)
    } catch {
      throw EtcdTestServerError("cannot start \(executable): \(error)")
    }
    process = started
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: startTimeout)
    while clock.now < deadline {
      if await Self.isHealthy(clientPort: clientPort) { return }
      try await Task.sleep(for: .milliseconds(50))
    }
    process = nil
    _ = try? await started.killAndWait()
    throw EtcdTestServerError(
      "etcd on \(client) did not become healthy within \(startTimeout) (data dir \(dataDirectory))")
  }

  /// Stops etcd with SIGTERM (SIGKILL after 5 s) and waits for it to exit.
  public func stop() async {
    guard let process else { return }
    self.process = nil
    process.terminate()
    let killer = Task {
      try await Task.sleep(for: .seconds(5))
      process.kill()
    }
    _ = try? await process.waitForExit()
    killer.cancel()
  }

  /// Kills etcd with SIGKILL, as a crash would, and waits for it to exit.
  public func kill() async {
    guard let process else { return }
    self.process = nil
    _ = try? await process.killAndWait()
  }

  /// Stops etcd and removes its data directory. The server cannot be restarted afterwards.
  public func shutdown() async {
    await stop()
    try? FileManager.default.removeItem(atPath: dataDirectory)
  }

  /// Whether etcd's `/health` endpoint answers healthy.
  static func isHealthy(clientPort: Int) async -> Bool {
    guard let url = URL(string: "http://127.0.0.1:\(clientPort)/health") else { return false }
    var request = URLRequest(url: url)
    request.timeoutInterval = 1
    guard let (data, response) = try? await URLSession.shared.data(for: request),
      (response as? HTTPURLResponse)?.statusCode == 200
    else { return false }
    return String(decoding: data, as: UTF8.self).contains("\"true\"")
  }

  static func defaultExecutable() -> String {
    if let path = ProcessInfo.processInfo.environment["ETCD_BINARY"], !path.isEmpty {
      return path
    }
    if FileManager.default.isExecutableFile(atPath: "/usr/bin/etcd") { return "/usr/bin/etcd" }
    return "etcd"
  }

  /// `count` distinct TCP ports on 127.0.0.1 that were free a moment ago (bound together,
  /// then released, so the kernel gives distinct ones). A closed port is also what a test
  /// of an unreachable endpoint needs.
  public static func unusedPorts(_ count: Int) throws -> [Int] {
    var sockets: [Int32] = []
    defer { for fd in sockets { close(fd) } }
    var ports: [Int] = []
    for _ in 0..<count {
      let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
      guard fd >= 0 else { throw EtcdTestServerError("socket() failed: errno \(errno)") }
      sockets.append(fd)
      var address = sockaddr_in()
      address.sin_family = sa_family_t(AF_INET)
      address.sin_port = 0
      address.sin_addr.s_addr = inet_addr("127.0.0.1")
      let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
      }
      guard bound == 0 else { throw EtcdTestServerError("bind() failed: errno \(errno)") }
      var length = socklen_t(MemoryLayout<sockaddr_in>.size)
      let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
      }
      guard named == 0 else { throw EtcdTestServerError("getsockname() failed: errno \(errno)") }
      ports.append(Int(UInt16(bigEndian: address.sin_port)))
    }
    return ports
  }
}

/// A failure to run the test etcd.
public struct EtcdTestServerError: Error, CustomStringConvertible, Sendable {
  /// What went wrong.
  public var message: String
  /// Creates an error.
  public init(_ message: String) { self.message = message }
  /// The message.
  public var description: String { message }
}

/// Runs `body` with a freshly started private etcd, shutting it down (and removing its data
/// directory) when `body` returns or throws.
public func withEtcdTestServer<Result: Sendable>(
  _ body: (EtcdTestServer) async throws -> Result
) async throws -> Result {
  let server = try await EtcdTestServer.start()
  do {
    let result = try await body(server)
    await server.shutdown()
    return result
  } catch {
    await server.shutdown()
    throw error
  }
}
