import TaskGraph

/// Measures the latency of an ``EtcdCoordinator``'s basic operations against a live etcd
/// (`taskgraph bench runtime` shows it): put, get and compare-and-swap, one at a time.
public enum EtcdCoordinatorBenchmark {
  /// Latencies of one operation, seconds.
  public struct Figure: Sendable, CustomStringConvertible {
    /// `put`, `get` or `compareAndSwap`.
    public var operation: String
    /// Timed operations.
    public var iterations: Int
    /// Median latency, seconds.
    public var medianSeconds: Double
    /// 99th-percentile latency, seconds.
    public var p99Seconds: Double

    /// One line: operation, median and p99 in milliseconds.
    public var description: String {
      func ms(_ seconds: Double) -> String { "\((seconds * 1e5).rounded() / 100)" }
      return
        "\(operation): median \(ms(medianSeconds)) ms, p99 \(ms(p99Seconds)) ms (\(iterations) operations)"
    }
  }

  /// Runs `iterations` of each operation on keys under `keyPrefix` (deleted afterwards).
  public static func run(
    _ coordinator: EtcdCoordinator, iterations: Int = 200, keyPrefix: String = "/bench/"
  ) async throws -> [Figure] {
    let clock = ContinuousClock()
    func measure(_ name: String, _ body: (Int) async throws -> Void) async throws -> Figure {
      var times: [Double] = []
      for i in 0..<(iterations + 5) {
        let start = clock.now
        try await body(i)
        let elapsed = clock.now - start
        if i >= 5 {
          times.append(elapsed.seconds)
        }
      }
      times.sort()
      return Figure(
        operation: name, iterations: iterations, medianSeconds: times[times.count / 2],
        p99Seconds: times[min(times.count - 1, times.count * 99 / 100)])
    }
    let key = keyPrefix + "key"
    let put = try await measure("put") { i in
      try await coordinator.put(key, Array("\(i)".utf8), lease: nil)
    }
    let get = try await measure("get") { _ in _ = try await coordinator.get(key) }
    try await coordinator.put(key, Array("0".utf8), lease: nil)
    let cas = try await measure("compareAndSwap") { i in
      let swapped = try await coordinator.compareAndSwap(
        key, expected: Array("\(i)".utf8), new: Array("\(i + 1)".utf8))
      precondition(swapped, "benchmark key changed under the benchmark")
    }
    try await coordinator.delete(key)
    return [put, get, cas]
  }
}
