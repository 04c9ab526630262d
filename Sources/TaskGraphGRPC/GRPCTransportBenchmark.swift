import TaskGraph

/// Measures one data request over a ``GRPCTransport`` on loopback (`taskgraph bench
/// runtime` shows it): a server and a client in this process, one request at a time.
public enum GRPCTransportBenchmark {
  /// Which side of the request carries the payload.
  public enum Direction: String, Sendable, CaseIterable {
    /// The request carries the payload; the response is empty (a push).
    case request
    /// The response carries the payload; the request is empty (a pull, the common case).
    case response
  }

  /// The figures of one payload size in one direction.
  public struct Figure: Sendable, CustomStringConvertible {
    /// Payload bytes per request.
    public var payloadBytes: Int
    /// Which side carried the payload.
    public var direction: Direction
    /// Servers the payload went to at once, each from its own request (a master sending
    /// every worker the parameters); the time is until the last has answered.
    public var servers = 1
    /// Timed requests (after warm-up).
    public var iterations: Int
    /// Median time of one request, seconds.
    public var medianSeconds: Double
    /// Mean time of one request, seconds.
    public var meanSeconds: Double
    /// Payload throughput at the median, MB/s (10^6 bytes per second).
    public var megabytesPerSecond: Double { Double(payloadBytes) / medianSeconds / 1e6 }

    /// One line: size, direction, median latency and throughput.
    public var description: String {
      let micros = medianSeconds * 1e6
      let side =
        servers == 1
        ? "in the \(direction.rawValue)" : "in the request to \(servers) servers at once"
      return
        "\(payloadBytes) B \(side): median \(micros.formatted2) µs, mean \((meanSeconds * 1e6).formatted2) µs, \(megabytesPerSecond.formatted2) MB/s (\(iterations) rounds)"
    }
  }

  /// Runs the benchmark for each size in both directions, then, for each count of
  /// `fanOut` above 1, pushes each size to that many servers at once.
  ///
  /// - Parameters:
  ///   - payloadSizes: payload bytes per request.
  ///   - fanOut: counts of servers to push to at once (1 is the plain request).
  ///   - iterations: timed requests per size; by default enough for about a second of
  ///     work at each size (at most 2000, at least 20).
  ///   - configuration: the transport's configuration.
  public static func run(
    payloadSizes: [Int] = [8, 8 * 1024, 8 * 1024 * 1024],
    fanOut: [Int] = [1],
    iterations: Int? = nil,
    configuration: GRPCTransportConfiguration = .defaults
  ) async throws -> [Figure] {
    // Payloads are made once, so the timing covers the transport, not their allocation.
    // Sizes of whole doubles travel as doubles, as training's vectors do.
    let payloads = Dictionary(
      payloadSizes.map { size in
        let payload =
          size % 8 == 0
          ? Payload(parts: [.doubles([Double](repeating: 0.5, count: size / 8))])
          : Payload([UInt8](repeating: 0x5a, count: size))
        return (size, payload)
      },
      uniquingKeysWith: { a, _ in a })
    let transport = GRPCTransport(configuration: configuration)
    // The pull's size travels in `method`, so the request itself stays empty.
    var servers: [any TransportServer] = []
    do {
      for _ in 0..<max(1, fanOut.max() ?? 1) {
        servers.append(
          try await transport.startServer(host: "127.0.0.1") { request in
            Int(request.method).flatMap { payloads[$0] } ?? []
          })
      }
      var figures = try await measure(
        payloadSizes: payloadSizes, payloads: payloads, iterations: iterations,
        transport: transport, address: servers[0].address)
      for k in fanOut where k > 1 {
        figures += try await measureFanOut(
          payloadSizes: payloadSizes, payloads: payloads, iterations: iterations,
          transport: transport, addresses: servers.prefix(k).map(\.address))
      }
      for server in servers { await server.stop() }
      await transport.close()
      return figures
    } catch {
      for server in servers { await server.stop() }
      await transport.close()
      throw error
    }
  }

  /// The same payload pushed to every address at once, each in its own request: the time
  /// until the last answer.
  private static func measureFanOut(
    payloadSizes: [Int], payloads: [Int: Payload], iterations: Int?, transport: GRPCTransport,
    addresses: [String]
  ) async throws -> [Figure] {
    var figures: [Figure] = []
    for size in payloadSizes {
      let request = DataRequest(
        job: "bench", from: 1, to: 0, epoch: 1, id: 0, method: "push",
        payload: payloads[size] ?? [])
      figures.append(
        try await figure(
          size: size, direction: .request, servers: addresses.count, iterations: iterations
        ) {
          try await withThrowingTaskGroup(of: Void.self) { group in
            for address in addresses {
              group.addTask {
                _ = try await transport.send(request, to: address, timeout: .seconds(60))
              }
            }
            try await group.waitForAll()
          }
        })
    }
    return figures
  }

  private static func measure(
    payloadSizes: [Int], payloads: [Int: Payload], iterations: Int?, transport: GRPCTransport,
    address: String
  ) async throws -> [Figure] {
    var figures: [Figure] = []
    for size in payloadSizes {
      for direction in Direction.allCases {
        let request =
          direction == .request
          ? DataRequest(
            job: "bench", from: 1, to: 0, epoch: 1, id: 0, method: "push",
            payload: payloads[size] ?? [])
          : DataRequest(job: "bench", from: 1, to: 0, epoch: 1, id: 0, method: "\(size)")
        figures.append(
          try await figure(size: size, direction: direction, servers: 1, iterations: iterations) {
            _ = try await transport.send(request, to: address, timeout: .seconds(60))
          })
      }
    }
    return figures
  }

  /// Times rounds of `round` after 5 of warm-up: `iterations` of them, by default enough for
  /// about a second of work at `size` bytes (at most 2000, at least 20).
  private static func figure(
    size: Int, direction: Direction, servers: Int, iterations: Int?,
    _ round: () async throws -> Void
  ) async throws -> Figure {
    let count = iterations ?? max(20, min(2000, 200_000_000 / max(size, 100_000)))
    let clock = ContinuousClock()
    var times: [Double] = []
    times.reserveCapacity(count)
    for i in 0..<(count + 5) {
      let start = clock.now
      try await round()
      let elapsed = clock.now - start
      if i >= 5 { times.append(elapsed.seconds) }
    }
    times.sort()
    return Figure(
      payloadBytes: size, direction: direction, servers: servers, iterations: count,
      medianSeconds: times[times.count / 2],
      meanSeconds: times.reduce(0, +) / Double(times.count))
  }
}

extension Double {
  var formatted2: String {
    let scaled = (self * 100).rounded() / 100
    return "\(scaled)"
  }
}
