import TaskGraph

/// How an ``EtcdCoordinator`` reaches etcd and how hard it tries.
public struct EtcdConfiguration: Sendable {
  /// The client URL of an etcd member, `http://HOST:PORT` (plaintext only).
  public var endpoint: String
  /// Prepended to every key the coordinator reads or writes, and stripped from keys it
  /// returns; `""` for none. Lets several independent users share one etcd.
  public var keyPrefix: String
  /// Timeouts of calls and of the first connection.
  public var timeouts: Timeouts
  /// How unary calls are retried after a transient failure.
  public var retry: EtcdRetryPolicy

  /// Timeouts of an ``EtcdCoordinator``.
  public struct Timeouts: Sendable, Hashable {
    /// How long ``EtcdCoordinator/connect(_:)`` waits for etcd to answer before it fails
    /// with `CoordinatorError.Code.unavailable`.
    public var connect: Duration
    /// The deadline of one attempt of one call.
    public var call: Duration

    /// Creates timeouts.
    public init(connect: Duration, call: Duration) {
      self.connect = connect
      self.call = call
    }

    /// 3 s to connect, 5 s per call attempt.
    public static var defaults: Self { Self(connect: .seconds(3), call: .seconds(5)) }
  }

  /// Creates a configuration; `endpoint` must be `http://HOST:PORT`.
  public init(
    endpoint: String, keyPrefix: String = "", timeouts: Timeouts = .defaults,
    retry: EtcdRetryPolicy = .defaults
  ) {
    self.endpoint = endpoint
    self.keyPrefix = keyPrefix
    self.timeouts = timeouts
    self.retry = retry
  }

  /// `http://127.0.0.1:2379`, no key prefix, default timeouts and retries.
  public static var defaults: Self { Self(endpoint: "http://127.0.0.1:2379") }

  /// The endpoint's host and port, or nil if it is not `http://HOST:PORT`.
  package var hostAndPort: (host: String, port: Int)? {
    guard endpoint.hasPrefix("http://") else { return nil }
    var rest = Substring(endpoint.dropFirst("http://".count))
    if rest.hasSuffix("/") { rest = rest.dropLast() }
    guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]),
      (1...65535).contains(port)
    else { return nil }
    var host = rest[..<colon]
    if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
    guard !host.isEmpty else { return nil }
    return (String(host), port)
  }
}
