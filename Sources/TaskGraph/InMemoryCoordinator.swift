import Synchronization

/// The embedded coordinator: an in-memory, strongly consistent key-value store with
/// revisions, leases and resumable watches, for jobs that run inside one process.
///
/// It implements the same semantics as the etcd coordinator: every mutation increments a
/// global revision; `create` succeeds only on an absent key; keys attached to a lease are
/// deleted (with watch events) when the lease expires. Lease time is read from an injectable
/// time source, so tests can advance time by hand; `expireLease(_:)` ends a lease at once.
///
/// Watches replay every retained event from the requested revision, then follow live
/// changes, so a watcher that restarts from `lastSeen + 1` loses and repeats nothing.
public actor InMemoryCoordinator: Coordinator {
  private struct Lease {
    var ttl: Duration
    var deadline: Duration
    var keys: Set<String> = []
  }

  private struct Watcher {
    var prefix: String
    var continuation: AsyncThrowingStream<WatchEvent, any Error>.Continuation
  }

  private var store: [String: KeyValue] = [:]
  private var revision: Int64 = 0
  private var leases: [LeaseID: Lease] = [:]
  private var nextLease: Int64 = 1
  private var history: [WatchEvent] = []
  private let historyLimit: Int
  private var watchers: [Int: Watcher] = [:]
  private let now: @Sendable () -> Duration
  private let sweepInterval: Duration?
  private var sweeper: Task<Void, Never>?

  /// Creates an empty store.
  ///
  /// - Parameters:
  ///   - now: the time source for lease expiry, as a duration since an arbitrary origin;
  ///     by default the monotonic `ContinuousClock`.
  ///   - sweepInterval: how often a background task expires due leases even when nobody
  ///     calls the store; nil disables the sweeper (tests that drive time by hand).
  ///   - historyLimit: how many past events (at least) are retained for watches that start
  ///     in the past (like etcd's compaction); a watch from a compacted revision fails.
  public init(
    now: (@Sendable () -> Duration)? = nil, sweepInterval: Duration? = .milliseconds(50),
    historyLimit: Int = 100_000
  ) {
    precondition(historyLimit >= 1, "the history must retain at least one event")
    self.historyLimit = historyLimit
    if let now {
      self.now = now
    } else {
      let origin = ContinuousClock.now
      self.now = { ContinuousClock.now - origin }
    }
    self.sweepInterval = sweepInterval
  }

  deinit {
    sweeper?.cancel()
  }

  /// The store's current revision (the revision of the latest mutation; 0 when empty).
  public var currentRevision: Int64 { revision }

  /// The entry at `key`, or nil.
  public func get(_ key: String) async throws -> KeyValue? {
    expireDueLeases()
    return store[key]
  }

  /// The entries under `prefix`, sorted by key, and the current revision.
  public func getPrefix(_ prefix: String) async throws -> (entries: [KeyValue], revision: Int64) {
    expireDueLeases()
    let entries = store.values.filter { $0.key.hasPrefix(prefix) }.sorted { $0.key < $1.key }
    return (entries, revision)
  }

  /// Writes `value` at `key` (attached to `lease`, which must be alive); returns the new revision.
  @discardableResult
  public func put(_ key: String, _ value: [UInt8], lease: LeaseID?) async throws -> Int64 {
    expireDueLeases()
    try checkLease(lease)
    write(key, value, lease: lease)
    return revision
  }

  /// Deletes `key` if present (a new revision and a delete event if it was).
  public func delete(_ key: String) async throws {
    expireDueLeases()
    remove(key)
  }

  /// Creates `key` only if absent; true if this call created it.
  public func create(_ key: String, _ value: [UInt8], lease: LeaseID?) async throws -> Bool {
    expireDueLeases()
    try checkLease(lease)
    guard store[key] == nil else { return false }
    write(key, value, lease: lease)
    return true
  }

  /// Replaces the value at `key` only if it equals `expected`; keeps the key's lease.
  public func compareAndSwap(_ key: String, expected: [UInt8], new: [UInt8]) async throws -> Bool {
    expireDueLeases()
    guard let current = store[key], current.value == expected else { return false }
    write(key, new, lease: current.lease)
    return true
  }

  /// Grants a lease that expires `ttl` after its last keep-alive on the time source.
  public func grantLease(ttl: Duration) async throws -> LeaseID {
    guard ttl > .zero else {
      throw CoordinatorError(code: .invalidArgument, message: "lease TTL must be positive")
    }
    expireDueLeases()
    startSweeperIfNeeded()
    let id = LeaseID(nextLease)
    nextLease += 1
    leases[id] = Lease(ttl: ttl, deadline: now() + ttl)
    return id
  }

  /// Restarts `lease`'s TTL; false if it has expired.
  public func keepAlive(_ lease: LeaseID) async throws -> Bool {
    expireDueLeases()
    guard var entry = leases[lease] else { return false }
    entry.deadline = now() + entry.ttl
    leases[lease] = entry
    return true
  }

  /// Ends `lease` now, deleting its keys.
  public func revokeLease(_ lease: LeaseID) async throws {
    expireDueLeases()
    end(lease)
  }

  /// Ends `lease` now, as if its TTL had run out: its keys are deleted and watchers see
  /// the deletions. Returns false if the lease did not exist. For fault tests.
  @discardableResult
  public func expireLease(_ lease: LeaseID) -> Bool {
    guard leases[lease] != nil else { return false }
    end(lease)
    return true
  }

  /// Expires every lease whose deadline has passed on the time source.
  public func expireDueLeases() {
    let t = now()
    let due = leases.filter { $0.value.deadline <= t }.map(\.key).sorted {
      $0.rawValue < $1.rawValue
    }
    for lease in due { end(lease) }
  }

  /// The IDs of the live leases (for tests and diagnostics).
  public var liveLeases: [LeaseID] { leases.keys.sorted { $0.rawValue < $1.rawValue } }

  /// Events under `prefix` from `revision` on: the retained history first, then live changes.
  public nonisolated func watch(prefix: String, fromRevision revision: Int64)
    -> AsyncThrowingStream<WatchEvent, any Error>
  {
    let (stream, continuation) = AsyncThrowingStream<WatchEvent, any Error>.makeStream()
    let id = watcherCounter.add(1, ordering: .relaxed).newValue
    let registration = Task {
      await self.addWatcher(id: id, prefix: prefix, from: revision, continuation)
    }
    continuation.onTermination = { _ in
      registration.cancel()
      Task {
        await registration.value
        await self.removeWatcher(id: id)
      }
    }
    return stream
  }

  // MARK: - Internals

  private nonisolated let watcherCounter = Atomic<Int>(0)

  private func addWatcher(
    id: Int, prefix: String, from: Int64,
    _ continuation: AsyncThrowingStream<WatchEvent, any Error>.Continuation
  ) {
    if Task.isCancelled { return }
    if from <= compactedRevision {
      continuation.finish(
        throwing: CoordinatorError(
          code: .invalidArgument,
          message: "watch from revision \(from): history compacted up to \(compactedRevision)"))
      return
    }
    // Replay and registration happen in one actor turn, so no event falls in between.
    for event in history where event.revision >= from && event.key.hasPrefix(prefix) {
      continuation.yield(event)
    }
    watchers[id] = Watcher(prefix: prefix, continuation: continuation)
  }

  private func removeWatcher(id: Int) {
    watchers[id] = nil
  }

  private func checkLease(_ lease: LeaseID?) throws {
    if let lease, leases[lease] == nil {
      throw CoordinatorError(code: .leaseExpired, message: "lease \(lease) is not alive")
    }
  }

  private func write(_ key: String, _ value: [UInt8], lease: LeaseID?) {
    revision += 1
    let old = store[key]
    if let oldLease = old?.lease, oldLease != lease { leases[oldLease]?.keys.remove(key) }
    if let lease { leases[lease]?.keys.insert(key) }
    let kv = KeyValue(
      key: key, value: value, createRevision: old?.createRevision ?? revision,
      modRevision: revision, lease: lease)
    store[key] = kv
    publish(.put(kv))
  }

  private func remove(_ key: String) {
    guard let old = store.removeValue(forKey: key) else { return }
    revision += 1
    if let lease = old.lease { leases[lease]?.keys.remove(key) }
    publish(.delete(key: key, revision: revision))
  }

  private func end(_ lease: LeaseID) {
    guard let entry = leases.removeValue(forKey: lease) else { return }
    for key in entry.keys.sorted() where store[key]?.lease == lease { remove(key) }
  }

  private var compactedRevision: Int64 = 0

  private func publish(_ event: WatchEvent) {
    history.append(event)
    // Compact in batches so appending stays amortised O(1).
    if history.count > historyLimit + max(1, historyLimit / 4) {
      let drop = history.count - historyLimit
      compactedRevision = history[drop - 1].revision
      history.removeFirst(drop)
    }
    for (id, watcher) in watchers where event.key.hasPrefix(watcher.prefix) {
      if case .terminated = watcher.continuation.yield(event) { watchers[id] = nil }
    }
  }

  private func startSweeperIfNeeded() {
    guard sweeper == nil, let interval = sweepInterval else { return }
    sweeper = Task { [weak self] in
      while !Task.isCancelled {
        try? await Task.sleep(for: interval)
        guard let self else { return }
        await self.expireDueLeases()
      }
    }
  }
}
