import Foundation
import TaskGraph
import TaskGraphEtcd
import TaskGraphTestSupport
import Testing

/// Collects a watch's events into an actor so a test can wait for a count of them.
private actor EventCollector {
  private(set) var events: [WatchEvent] = []
  private var waiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []

  func append(_ event: WatchEvent) {
    events.append(event)
    let ready = waiters.filter { $0.count <= events.count }
    waiters.removeAll { $0.count <= events.count }
    for waiter in ready { waiter.continuation.resume() }
  }

  /// Waits until at least `count` events arrived.
  func wait(for count: Int) async {
    if events.count >= count { return }
    await withCheckedContinuation { waiters.append((count, $0)) }
  }
}

/// Runs `body` on a freshly started etcd with a connected coordinator.
private func withCoordinator<R: Sendable>(
  keyPrefix: String = "/test",
  _ body: (EtcdTestServer, EtcdCoordinator) async throws -> R
) async throws -> R {
  try await withEtcdTestServer { server in
    try await withEtcdCoordinator(
      EtcdConfiguration(endpoint: server.endpoint, keyPrefix: keyPrefix)
    ) { coordinator in
      try await body(server, coordinator)
    }
  }
}

/// Waits for `operation` with an upper bound, failing the test if it is exceeded.
private func within<R: Sendable>(
  _ limit: Duration, _ what: String, _ operation: @escaping @Sendable () async throws -> R
) async throws -> R {
  try await withThrowingTaskGroup(of: R?.self) { group in
    group.addTask { try await operation() }
    group.addTask {
      try await Task.sleep(for: limit)
      return nil
    }
    defer { group.cancelAll() }
    guard let first = try await group.next(), let result = first else {
      throw EtcdTestServerError("timed out after \(limit) waiting for \(what)")
    }
    return result
  }
}

@Suite("EtcdCoordinator against a real etcd", .serialized)
struct EtcdCoordinatorTests {
  @Test("create succeeds once; compare-and-swap only on the expected value")
  func createAndCompareAndSwap() async throws {
    try await withCoordinator { _, etcd in
      #expect(try await etcd.get("/job/epoch") == nil)
      #expect(try await etcd.create("/job/epoch", Array("0".utf8), lease: nil))
      #expect(try await !etcd.create("/job/epoch", Array("9".utf8), lease: nil))
      #expect(try await etcd.get("/job/epoch")?.string == "0")

      #expect(try await !etcd.compareAndSwap("/job/epoch", expected: Array("5".utf8), new: [0x31]))
      #expect(try await etcd.compareAndSwap("/job/epoch", expected: Array("0".utf8), new: [0x31]))
      let current = try #require(try await etcd.get("/job/epoch"))
      #expect(current.string == "1")
      #expect(current.modRevision > current.createRevision)

      // A compare-and-swap keeps the key's lease.
      let lease = try await etcd.grantLease(ttl: .seconds(30))
      #expect(try await etcd.create("/job/tasks/0/address", Array("a".utf8), lease: lease))
      #expect(
        try await etcd.compareAndSwap(
          "/job/tasks/0/address", expected: Array("a".utf8), new: Array("b".utf8)))
      #expect(try await etcd.get("/job/tasks/0/address")?.lease == lease)

      try await etcd.put("/job/tasks/1/address", Array("c".utf8), lease: nil)
      try await etcd.put("/jobs-other/x", [1], lease: nil)
      let (entries, revision) = try await etcd.getPrefix("/job/")
      #expect(entries.map(\.key) == ["/job/epoch", "/job/tasks/0/address", "/job/tasks/1/address"])
      #expect(revision >= entries.map(\.modRevision).max()!)

      try await etcd.delete("/job/epoch")
      try await etcd.delete("/job/epoch")  // idempotent
      #expect(try await etcd.get("/job/epoch") == nil)

      try await etcd.revokeLease(lease)
      try await etcd.revokeLease(lease)  // already gone: still succeeds
      #expect(try await etcd.get("/job/tasks/0/address") == nil)
    }
  }

  @Test("key prefixes isolate coordinators sharing one etcd")
  func keyPrefixIsolation() async throws {
    try await withEtcdTestServer { server in
      let a = try await EtcdCoordinator.connect(
        EtcdConfiguration(endpoint: server.endpoint, keyPrefix: "/a"))
      let b = try await EtcdCoordinator.connect(
        EtcdConfiguration(endpoint: server.endpoint, keyPrefix: "/b"))
      #expect(try await a.create("/k", [1], lease: nil))
      #expect(try await b.create("/k", [2], lease: nil))
      #expect(try await a.get("/k")?.value == [1])
      #expect(try await b.getPrefix("").entries.map(\.key) == ["/k"])
      await a.close()
      await b.close()
    }
  }

  @Test("an expired lease deletes its key, and a watch sees the delete within TTL + 1 s")
  func leaseExpiry() async throws {
    try await withCoordinator { _, etcd in
      let ttl = Duration.seconds(2)
      let lease = try await etcd.grantLease(ttl: ttl)
      try await etcd.put("/job/tasks/3/address", Array("127.0.0.1:1".utf8), lease: lease)
      let (_, revision) = try await etcd.getPrefix("/job/tasks/")
      let collector = EventCollector()
      let watcher = Task {
        for try await event in etcd.watch(prefix: "/job/tasks/", fromRevision: revision + 1) {
          await collector.append(event)
        }
      }
      defer { watcher.cancel() }
      #expect(try await etcd.keepAlive(lease))
      let lastKeepAlive = ContinuousClock.now
      try await within(.seconds(10), "the lease's delete event") { await collector.wait(for: 1) }
      let elapsed = ContinuousClock.now - lastKeepAlive
      let events = await collector.events
      #expect(events == [.delete(key: "/job/tasks/3/address", revision: events[0].revision)])
      #expect(elapsed <= ttl + .seconds(1), "delete seen \(elapsed) after the last keep-alive")
      #expect(try await etcd.get("/job/tasks/3/address") == nil)
      #expect(try await !etcd.keepAlive(lease))
      await #expect(throws: CoordinatorError.self) {
        try await etcd.put("/job/tasks/3/address", [1], lease: lease)
      }
    }
  }

  @Test("a watch resumes across an etcd kill and restart: nothing lost, nothing repeated")
  func watchSurvivesRestart() async throws {
    try await withCoordinator { server, etcd in
      let (_, revision) = try await etcd.getPrefix("/w/")
      let collector = EventCollector()
      let watcher = Task {
        for try await event in etcd.watch(prefix: "/w/", fromRevision: revision + 1) {
          await collector.append(event)
        }
      }
      defer { watcher.cancel() }
      for i in 0..<5 { try await etcd.put("/w/\(i)", Array("\(i)".utf8), lease: nil) }
      try await within(.seconds(10), "the first 5 events") { await collector.wait(for: 5) }

      await server.kill()
      try await server.restart()
      // These writes retry until the restarted etcd answers; the watch reconnects on its
      // own connection and resumes after the last revision it delivered.
      for i in 5..<10 { try await etcd.put("/w/\(i)", Array("\(i)".utf8), lease: nil) }
      try await etcd.delete("/w/0")
      try await within(.seconds(20), "all 11 events") { await collector.wait(for: 11) }

      let events = await collector.events
      #expect(events.count == 11)
      #expect(events.prefix(10).map(\.key) == (0..<10).map { "/w/\($0)" })
      #expect(events.last == .delete(key: "/w/0", revision: events.last!.revision))
      let revisions = events.map(\.revision)
      #expect(revisions == revisions.sorted() && Set(revisions).count == revisions.count)
    }
  }

  @Test("many calls in a row: every write lands and the watch sees each once, in order")
  func sustainedTraffic() async throws {
    // Enough traffic for etcd's PINGs to exceed swift-nio-http2's budget of 200 control
    // frames per 30 s on a connection (FINDINGS): calls and the watch must ride it out.
    try await withCoordinator { _, etcd in
      let count = 1500
      let (_, revision) = try await etcd.getPrefix("/s/")
      let collector = EventCollector()
      let watcher = Task {
        for try await event in etcd.watch(prefix: "/s/", fromRevision: revision + 1) {
          await collector.append(event)
        }
      }
      defer { watcher.cancel() }
      for i in 0..<count {
        try await etcd.put("/s/\(i % 10)", Array("\(i)".utf8), lease: nil)
      }
      try await within(.seconds(60), "\(count) events") { await collector.wait(for: count) }
      // Let any duplicate writes' events arrive too before checking.
      try await etcd.put("/s/end", [], lease: nil)
      try await within(.seconds(10), "the end marker") {
        while await collector.events.last?.key != "/s/end" { await Task.yield() }
      }
      let events = await collector.events.dropLast()
      let values = events.compactMap { event -> String? in
        if case .put(let kv) = event { return kv.string }
        return nil
      }
      // The watch repeats nothing: one event per revision, in revision order. A put whose
      // connection dropped after it was applied is retried and lands twice (two revisions,
      // same value); with connection rotation that should not happen, so it is counted.
      let revisions = events.map(\.revision)
      #expect(revisions == revisions.sorted() && Set(revisions).count == revisions.count)
      var deduplicated: [String] = []
      for value in values where deduplicated.last != value { deduplicated.append(value) }
      #expect(deduplicated == (0..<count).map { "\($0)" })
      #expect(values.count == count, "\(values.count - count) puts were applied twice")
    }
  }

  @Test("a watch from an old revision replays what happened since")
  func watchReplaysFromRevision() async throws {
    try await withCoordinator { _, etcd in
      let first = try await etcd.put("/r/a", [1], lease: nil)
      try await etcd.put("/r/b", [2], lease: nil)
      try await etcd.put("/r/a", [3], lease: nil)
      var seen: [WatchEvent] = []
      for try await event in etcd.watch(prefix: "/r/", fromRevision: first) {
        seen.append(event)
        if seen.count == 3 { break }
      }
      #expect(seen.map(\.key) == ["/r/a", "/r/b", "/r/a"])
      #expect(seen.first?.revision == first)
    }
  }

  @Test("connecting to a closed port fails fast with a clear message")
  func failFastWhenUnreachable() async throws {
    let port = try EtcdTestServer.unusedPorts(1)[0]
    let endpoint = "http://127.0.0.1:\(port)"
    let start = ContinuousClock.now
    do {
      _ = try await EtcdCoordinator.connect(EtcdConfiguration(endpoint: endpoint))
      Issue.record("connected to a closed port")
    } catch let error as CoordinatorError {
      #expect(error.code == .unavailable)
      #expect(error.message.contains("cannot reach etcd at \(endpoint)"))
    }
    #expect(ContinuousClock.now - start < .seconds(5))
  }

  @Test("a malformed endpoint is refused at once")
  func malformedEndpoint() async throws {
    await #expect(throws: CoordinatorError.self) {
      _ = try await EtcdCoordinator.connect(EtcdConfiguration(endpoint: "127.0.0.1:2379"))
    }
  }
}

@Suite("Retry policy")
struct EtcdRetryPolicyTests {
  @Test("backoff doubles up to the cap and stops after the last attempt")
  func schedule() {
    let policy = EtcdRetryPolicy(
      maxAttempts: 6, initialBackoff: .milliseconds(100), maxBackoff: .milliseconds(500),
      multiplier: 2)
    let waits = (1...6).map { policy.backoff(afterAttempt: $0) }
    #expect(
      waits == [
        .milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(500),
        .milliseconds(500), nil,
      ])
  }
}
