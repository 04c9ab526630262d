import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization
import TaskGraph

/// A ``Coordinator`` on an etcd v3 server, spoken to over gRPC (HTTP/2, plaintext).
///
/// Create one with ``connect(_:)`` (or scope one with ``withEtcdCoordinator(_:_:)``) and
/// ``close()`` it when done. Unary calls share one connection; lease keep-alives use a
/// second one, and every watch its own, so a dropped connection (etcd restarting, or
/// swift-nio-http2 closing a connection after etcd's PING flood) interrupts as little as
/// possible.
///
/// Retry semantics, on which callers can rely:
/// - Every call is retried on a transient failure (`unavailable`, an attempt's deadline, a
///   closed connection) following ``EtcdConfiguration/retry``, on a fresh connection.
///   When the attempts run out the call throws `CoordinatorError.Code.unavailable`.
/// - `get`, `getPrefix`, `put`, `delete`, `keepAlive` are idempotent and simply retried.
/// - `create` and `compareAndSwap` are retried as transactions whose failure branch reads
///   the key back. If an earlier attempt of the same call may have been applied (it failed
///   after being sent) and the key now holds exactly the value this call wrote (and, for
///   `create`, its lease), the call reports success. So a `true` is never lost to a retry;
///   a value that another writer set to the very same bytes is indistinguishable, which is
///   why the runtime's values carry the writer's identity.
/// - `grantLease` picks the lease ID itself, so a retry that finds the lease already
///   granted returns it instead of leaking a second lease. `revokeLease` of a lease that is
///   already gone succeeds.
/// - Watches reconnect forever (until cancelled or closed) and resume from the revision
///   after the last event delivered: no event is lost or repeated. Only a compacted start
///   revision ends a watch with an error.
public final class EtcdCoordinator: Coordinator {
  /// The configuration this coordinator was connected with.
  public let configuration: EtcdConfiguration

  private let unary: EtcdConnection
  private let leases: EtcdConnection
  private let watches = Mutex(WatchRegistry())

  private struct WatchRegistry {
    var nextID = 0
    var tasks: [Int: Task<Void, Never>] = [:]
    var closed = false
  }

  private init(_ configuration: EtcdConfiguration) throws {
    self.configuration = configuration
    self.unary = try EtcdConnection(configuration)
    self.leases = try EtcdConnection(configuration)
  }

  /// Connects to the etcd at `configuration.endpoint` and checks that it answers.
  ///
  /// - Throws: `CoordinatorError` with code `unavailable` ("cannot reach etcd at …") if
  ///   etcd does not answer within `configuration.timeouts.connect`, or `invalidArgument`
  ///   for a malformed endpoint.
  public static func connect(_ configuration: EtcdConfiguration) async throws -> EtcdCoordinator {
    let coordinator = try EtcdCoordinator(configuration)
    do {
      try await coordinator.probe()
    } catch {
      await coordinator.close()
      throw error
    }
    return coordinator
  }

  /// Ends every watch (their streams throw `unavailable`), closes the connections and
  /// waits for their background tasks. Calls made afterwards throw `unavailable`.
  public func close() async {
    let tasks = watches.withLock { registry in
      registry.closed = true
      defer { registry.tasks = [:] }
      return registry.tasks
    }
    for task in tasks.values {
      task.cancel()
      await task.value
    }
    await unary.close()
    await leases.close()
  }

  // MARK: Key-value

  /// The entry at `key` (a Range of one key), or nil.
  public func get(_ key: String) async throws -> KeyValue? {
    var request = Etcdserverpb_RangeRequest()
    request.key = fullKey(key)
    let response = try await kvCall("get \(key)") { [request] kv, options, _ in
      try await kv.range(request, options: options)
    }
    return try response.kvs.first.map(keyValue)
  }

  /// Every entry under `prefix`, in key order, with the revision of the read.
  public func getPrefix(_ prefix: String) async throws -> (entries: [KeyValue], revision: Int64) {
    var request = Etcdserverpb_RangeRequest()
    (request.key, request.rangeEnd) = prefixRange(prefix)
    let response = try await kvCall("get prefix \(prefix)") { [request] kv, options, _ in
      try await kv.range(request, options: options)
    }
    return (try response.kvs.map(keyValue), response.header.revision)
  }

  /// Writes `key`, attached to `lease` if given (`leaseExpired` if it is gone); returns
  /// the new revision.
  @discardableResult
  public func put(_ key: String, _ value: [UInt8], lease: LeaseID?) async throws -> Int64 {
    var request = Etcdserverpb_PutRequest()
    request.key = fullKey(key)
    request.value = Data(value)
    request.lease = lease?.rawValue ?? 0
    let response = try await kvCall("put \(key)") { [request] kv, options, _ in
      try await kv.put(request, options: options)
    }
    return response.header.revision
  }

  /// Deletes `key`; deleting a missing key succeeds.
  public func delete(_ key: String) async throws {
    var request = Etcdserverpb_DeleteRangeRequest()
    request.key = fullKey(key)
    _ = try await kvCall("delete \(key)") { [request] kv, options, _ in
      try await kv.deleteRange(request, options: options)
    }
  }

  /// Creates `key` only if it does not exist (a transaction on `create_revision == 0`);
  /// true if this call created it, also when a retried attempt finds its own write.
  public func create(_ key: String, _ value: [UInt8], lease: LeaseID?) async throws -> Bool {
    var compare = Etcdserverpb_Compare()
    compare.key = fullKey(key)
    compare.target = .create
    compare.result = .equal
    compare.createRevision = 0
    var put = Etcdserverpb_PutRequest()
    put.key = compare.key
    put.value = Data(value)
    put.lease = lease?.rawValue ?? 0
    let leaseRaw = put.lease
    return try await conditionalWrite("create \(key)", compare: compare, put: put) {
      [put] current in
      current.value == put.value && current.lease == leaseRaw
    }
  }

  /// Replaces the value at `key` with `new` only if it equals `expected` (a transaction on
  /// the value), keeping the key's lease; true if this call replaced it.
  public func compareAndSwap(_ key: String, expected: [UInt8], new: [UInt8]) async throws -> Bool {
    var compare = Etcdserverpb_Compare()
    compare.key = fullKey(key)
    compare.target = .value
    compare.result = .equal
    compare.value = Data(expected)
    var put = Etcdserverpb_PutRequest()
    put.key = compare.key
    put.value = Data(new)
    // A compare-and-swap keeps the key's lease (a plain put would detach it).
    put.ignoreLease = true
    return try await conditionalWrite("compare-and-swap \(key)", compare: compare, put: put) {
      [put] current in current.value == put.value
    }
  }

  /// A transaction `if compare then put else range(key)`. If it fails after an earlier
  /// attempt may have been applied, `appliedByUs` decides from the key's current state.
  private func conditionalWrite(
    _ what: String, compare: Etcdserverpb_Compare, put: Etcdserverpb_PutRequest,
    appliedByUs: @escaping @Sendable (Mvccpb_KeyValue) -> Bool
  ) async throws -> Bool {
    var request = Etcdserverpb_TxnRequest()
    request.compare = [compare]
    var success = Etcdserverpb_RequestOp()
    success.requestPut = put
    request.success = [success]
    var readBack = Etcdserverpb_RangeRequest()
    readBack.key = compare.key
    var failure = Etcdserverpb_RequestOp()
    failure.requestRange = readBack
    request.failure = [failure]
    let finalRequest = request
    let response = try await kvCall(what) { kv, options, attempt in
      (try await kv.txn(finalRequest, options: options), attempt)
    }
    if response.0.succeeded { return true }
    guard response.1 > 1, let current = response.0.responses.first?.responseRange.kvs.first
    else { return false }
    return appliedByUs(current)
  }

  // MARK: Leases

  /// Grants a lease of `ttl`, rounded up to whole seconds (etcd's unit), at least 1 s.
  public func grantLease(ttl: Duration) async throws -> LeaseID {
    // etcd counts whole seconds; round up so a lease never lives shorter than asked.
    let seconds = max(1, Int64((ttl / .seconds(1)).rounded(.up)))
    var request = Etcdserverpb_LeaseGrantRequest()
    request.ttl = seconds
    // Choosing the ID makes a retried grant detectable ("lease already exists").
    request.id = Int64.random(in: 1...Int64.max)
    let finalRequest = request
    let id = try await call("grant lease", on: unary) { client, options, attempt -> Int64 in
      do {
        let response = try await Etcdserverpb_Lease.Client(wrapping: client).leaseGrant(
          finalRequest, options: options)
        if !response.error.isEmpty {
          throw CoordinatorError(
            code: .internalError, message: "etcd refused a lease: \(response.error)")
        }
        return response.id
      } catch let error as RPCError where error.code == .failedPrecondition && attempt > 1 {
        return finalRequest.id
      }
    }
    return LeaseID(id)
  }

  /// Refreshes `lease` once (over the keep-alive connection); false if it has expired.
  public func keepAlive(_ lease: LeaseID) async throws -> Bool {
    var request = Etcdserverpb_LeaseKeepAliveRequest()
    request.id = lease.rawValue
    let finalRequest = request
    let ttl = try await call("keep lease \(lease) alive", on: leases) { client, options, _ in
      try await Etcdserverpb_Lease.Client(wrapping: client).leaseKeepAlive(
        options: options,
        requestProducer: { writer in try await writer.write(finalRequest) },
        onResponse: { response in
          for try await message in response.messages { return message.ttl }
          throw RPCError(code: .unavailable, message: "keep-alive stream ended without a response")
        })
    }
    return ttl > 0
  }

  /// Revokes `lease`, deleting its keys; revoking a lease that is already gone succeeds.
  public func revokeLease(_ lease: LeaseID) async throws {
    var request = Etcdserverpb_LeaseRevokeRequest()
    request.id = lease.rawValue
    let finalRequest = request
    try await call("revoke lease \(lease)", on: unary) { client, options, _ in
      do {
        _ = try await Etcdserverpb_Lease.Client(wrapping: client).leaseRevoke(
          finalRequest, options: options)
      } catch let error as RPCError where error.code == .notFound {
        // Already expired or revoked (perhaps by an earlier attempt): the goal is met.
      }
    }
  }

  // MARK: Watches

  /// Events under `prefix` from `revision` on (0: from now), on a connection of the
  /// watch's own, resumed after any failure from the revision after the last delivered.
  public func watch(prefix: String, fromRevision revision: Int64) -> AsyncThrowingStream<
    WatchEvent, any Error
  > {
    let (stream, continuation) = AsyncThrowingStream<WatchEvent, any Error>.makeStream()
    let range = prefixRange(prefix)
    let watcher = EtcdWatcher(
      configuration: configuration, key: range.key, rangeEnd: range.end,
      startRevision: revision, keyPrefixLength: configuration.keyPrefix.utf8.count)
    let id: Int? = watches.withLock { registry in
      guard !registry.closed else { return nil }
      let id = registry.nextID
      registry.nextID += 1
      registry.tasks[id] = Task {
        await watcher.run(continuation)
      }
      return id
    }
    guard let id else {
      continuation.finish(
        throwing: CoordinatorError(code: .unavailable, message: "etcd coordinator is closed"))
      return stream
    }
    continuation.onTermination = { [weak self] _ in
      let task = self?.watches.withLock { $0.tasks.removeValue(forKey: id) }
      task?.cancel()
    }
    return stream
  }

  // MARK: Plumbing

  private func probe() async throws {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: configuration.timeouts.connect)
    var request = Etcdserverpb_RangeRequest()
    // etcd refuses an empty key; "\0" is a valid key nobody uses.
    request.key = configuration.keyPrefix.isEmpty ? Data([0]) : fullKey("")
    request.limit = 1
    var lastError: (any Error)?
    while clock.now < deadline {
      let (client, generation) = try unary.client()
      var options = CallOptions.defaults
      options.timeout = max(.milliseconds(10), clock.now.duration(to: deadline))
      options.waitForReady = false
      do {
        _ = try await Etcdserverpb_KV.Client(wrapping: client).range(request, options: options)
        return
      } catch  where Self.isTransient(error) {
        lastError = error
        unary.replace(generation: generation)
        try await Task.sleep(for: .milliseconds(100))
      } catch {
        throw mapError(error, what: "connect to \(configuration.endpoint)")
      }
    }
    throw CoordinatorError(
      code: .unavailable,
      message:
        "cannot reach etcd at \(configuration.endpoint) within \(configuration.timeouts.connect)",
      cause: lastError)
  }

  private func kvCall<R: Sendable>(
    _ what: String,
    _ body:
      @escaping @Sendable (Etcdserverpb_KV.Client<HTTP2ClientTransport.Posix>, CallOptions, Int)
      async throws -> R
  ) async throws -> R {
    try await call(what, on: unary) { client, options, attempt in
      try await body(Etcdserverpb_KV.Client(wrapping: client), options, attempt)
    }
  }

  /// Runs `body` (given the client, call options and the 1-based attempt number), retrying
  /// transient failures on a fresh connection as the retry policy says.
  private func call<R: Sendable>(
    _ what: String, on connection: EtcdConnection,
    _ body: @escaping @Sendable (EtcdGRPCClient, CallOptions, Int) async throws -> R
  ) async throws -> R {
    var options = CallOptions.defaults
    options.timeout = configuration.timeouts.call
    options.waitForReady = false
    var attempt = 1
    while true {
      let (client, generation) = try connection.client()
      do {
        return try await body(client, options, attempt)
      } catch  where Self.isTransient(error) {
        connection.replace(generation: generation)
        guard let wait = configuration.retry.backoff(afterAttempt: attempt) else {
          throw CoordinatorError(
            code: .unavailable,
            message:
              "cannot reach etcd at \(configuration.endpoint): \(what) failed \(attempt) times",
            cause: error)
        }
        try await Task.sleep(for: wait)
        attempt += 1
      } catch {
        throw mapError(error, what: what)
      }
    }
  }

  static func isTransient(_ error: any Error) -> Bool {
    if let error = error as? RPCError {
      switch error.code {
      case .unavailable, .deadlineExceeded, .unknown: return true
      default: return false
      }
    }
    return error is RuntimeError
  }

  private func mapError(_ error: any Error, what: String) -> any Error {
    if error is CoordinatorError || error is CancellationError { return error }
    guard let rpc = error as? RPCError else {
      return CoordinatorError(code: .internalError, message: "etcd: \(what) failed", cause: error)
    }
    switch rpc.code {
    case .notFound where rpc.message.contains("lease"):
      return CoordinatorError(
        code: .leaseExpired, message: "etcd: \(what): lease not found (expired)", cause: rpc)
    case .invalidArgument, .outOfRange:
      return CoordinatorError(code: .invalidArgument, message: "etcd: \(what) refused", cause: rpc)
    case .cancelled:
      return CancellationError()
    default:
      return CoordinatorError(code: .internalError, message: "etcd: \(what) failed", cause: rpc)
    }
  }

  private func fullKey(_ key: String) -> Data {
    Data((configuration.keyPrefix + key).utf8)
  }

  /// The key and range end that select every key starting with `prefix`.
  private func prefixRange(_ prefix: String) -> (key: Data, end: Data) {
    let key = fullKey(prefix)
    return (key.isEmpty ? Data([0]) : key, Self.rangeEnd(ofPrefix: key))
  }

  /// etcd's range end for a prefix: the prefix with its last byte below 0xff incremented
  /// and the rest dropped; `\0` (every key) for an empty or all-0xff prefix.
  static func rangeEnd(ofPrefix prefix: Data) -> Data {
    var bytes = [UInt8](prefix)
    while let last = bytes.last {
      if last < 0xff {
        bytes[bytes.count - 1] = last + 1
        return Data(bytes)
      }
      bytes.removeLast()
    }
    return Data([0])
  }

  private func keyValue(_ kv: Mvccpb_KeyValue) throws -> KeyValue {
    KeyValue(
      key: Self.stripPrefix(kv.key, length: configuration.keyPrefix.utf8.count),
      value: [UInt8](kv.value), createRevision: kv.createRevision, modRevision: kv.modRevision,
      lease: kv.lease == 0 ? nil : LeaseID(kv.lease))
  }

  static func stripPrefix(_ key: Data, length: Int) -> String {
    String(decoding: key.dropFirst(length), as: UTF8.self)
  }
}

/// Runs `body` with a coordinator connected to `configuration.endpoint`, closing it when
/// `body` returns or throws.
public func withEtcdCoordinator<Result: Sendable>(
  _ configuration: EtcdConfiguration,
  _ body: (EtcdCoordinator) async throws -> Result
) async throws -> Result {
  let coordinator = try await EtcdCoordinator.connect(configuration)
  do {
    let result = try await body(coordinator)
    await coordinator.close()
    return result
  } catch {
    await coordinator.close()
    throw error
  }
}
