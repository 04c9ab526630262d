import Synchronization
import TaskGraph
import XCTest

/// A hand-driven time source for lease expiry.
final class ManualTime: Sendable {
  private let value = Mutex<Duration>(.zero)
  var now: Duration { value.withLock { $0 } }
  func advance(by d: Duration) { value.withLock { $0 += d } }
}

final class InMemoryCoordinatorTests: XCTestCase {
  func makeStore(_ time: ManualTime) -> InMemoryCoordinator {
    InMemoryCoordinator(now: { time.now }, sweepInterval: nil)
  }

  func testPutGetRevisionsAndPrefix() async throws {
    let store = makeStore(ManualTime())
    let r1 = try await store.put("/a/1", [1], lease: nil)
    let r2 = try await store.put("/a/2", [2], lease: nil)
    let r3 = try await store.put("/a/1", [3], lease: nil)
    XCTAssertEqual([r1, r2, r3], [1, 2, 3])
    let kv = try await store.get("/a/1")
    XCTAssertEqual(kv?.value, [3])
    XCTAssertEqual(kv?.createRevision, 1)
    XCTAssertEqual(kv?.modRevision, 3)
    _ = try await store.put("/b", [9], lease: nil)
    let (entries, revision) = try await store.getPrefix("/a/")
    XCTAssertEqual(entries.map(\.key), ["/a/1", "/a/2"])
    XCTAssertEqual(revision, 4)
    try await store.delete("/a/1")
    let gone = try await store.get("/a/1")
    XCTAssertNil(gone)
  }

  func testCreateOnlyIfAbsentAndCompareAndSwap() async throws {
    let store = makeStore(ManualTime())
    let first = try await store.create("/k", [1], lease: nil)
    let second = try await store.create("/k", [2], lease: nil)
    XCTAssertTrue(first)
    XCTAssertFalse(second)
    let wrong = try await store.compareAndSwap("/k", expected: [2], new: [3])
    XCTAssertFalse(wrong)
    let right = try await store.compareAndSwap("/k", expected: [1], new: [3])
    XCTAssertTrue(right)
    let missing = try await store.compareAndSwap("/none", expected: [], new: [1])
    XCTAssertFalse(missing)
    let value = try await store.get("/k")?.value
    XCTAssertEqual(value, [3])
    // After deletion the key can be created again.
    try await store.delete("/k")
    let again = try await store.create("/k", [4], lease: nil)
    XCTAssertTrue(again)
  }

  func testLeaseExpiresAfterTTLUnlessKeptAlive() async throws {
    let time = ManualTime()
    let store = makeStore(time)
    let lease = try await store.grantLease(ttl: .seconds(3))
    _ = try await store.put("/leased", [1], lease: lease)
    time.advance(by: .seconds(2))
    let alive = try await store.keepAlive(lease)
    XCTAssertTrue(alive)
    time.advance(by: .seconds(2))
    let stillThere = try await store.get("/leased")
    XCTAssertNotNil(stillThere, "kept alive 2 s ago with a 3 s TTL")
    time.advance(by: .seconds(1))
    let expired = try await store.get("/leased")
    XCTAssertNil(expired)
    let refreshed = try await store.keepAlive(lease)
    XCTAssertFalse(refreshed)
    do {
      _ = try await store.put("/x", [1], lease: lease)
      XCTFail("put under an expired lease must fail")
    } catch let error as CoordinatorError {
      XCTAssertEqual(error.code, .leaseExpired)
    }
  }

  func testExpireLeaseAndRevokeDeleteKeysWithEvents() async throws {
    let store = makeStore(ManualTime())
    let a = try await store.grantLease(ttl: .seconds(60))
    let b = try await store.grantLease(ttl: .seconds(60))
    _ = try await store.put("/x/a", [1], lease: a)
    _ = try await store.put("/x/b", [2], lease: b)
    let start = await store.currentRevision + 1
    let expired = await store.expireLease(a)
    XCTAssertTrue(expired)
    try await store.revokeLease(b)
    var events: [WatchEvent] = []
    for try await event in store.watch(prefix: "/x/", fromRevision: start) {
      events.append(event)
      if events.count == 2 { break }
    }
    XCTAssertEqual(events, [.delete(key: "/x/a", revision: 3), .delete(key: "/x/b", revision: 4)])
    let left = try await store.getPrefix("/x/").entries
    XCTAssertTrue(left.isEmpty)
  }

  func testWatchReplaysThenFollowsAndResumesWithoutLossOrRepeat() async throws {
    let store = makeStore(ManualTime())
    for i in 1...3 { _ = try await store.put("/w/\(i)", [UInt8(i)], lease: nil) }
    _ = try await store.put("/other", [0], lease: nil)

    var seen: [Int64] = []
    var iterator = store.watch(prefix: "/w/", fromRevision: 2).makeAsyncIterator()
    while let event = try await iterator.next() {
      seen.append(event.revision)
      if seen.count == 2 { break }
    }
    XCTAssertEqual(seen, [2, 3])
    // Writes while nobody watches; the resumed watch picks up exactly after the last seen.
    _ = try await store.put("/w/4", [4], lease: nil)
    try await store.delete("/w/1")
    var resumed: [WatchEvent] = []
    for try await event in store.watch(prefix: "/w/", fromRevision: seen.last! + 1) {
      resumed.append(event)
      if resumed.count == 2 { break }
    }
    XCTAssertEqual(resumed.map(\.revision), [5, 6])
    XCTAssertEqual(resumed.map(\.key), ["/w/4", "/w/1"])
    if case .put(let kv) = resumed[0] { XCTAssertEqual(kv.value, [4]) } else { XCTFail() }

    // A live watch sees later writes.
    let stream = store.watch(prefix: "/w/", fromRevision: 7)
    let writer = Task {
      _ = try await store.put("/w/5", [5], lease: nil)
    }
    var live: WatchEvent?
    for try await event in stream {
      live = event
      break
    }
    try await writer.value
    XCTAssertEqual(live?.key, "/w/5")
    XCTAssertEqual(live?.revision, 7)
  }

  func testWatchFromCompactedRevisionFails() async throws {
    let store = InMemoryCoordinator(sweepInterval: nil, historyLimit: 4)
    for i in 1...10 { _ = try await store.put("/c", [UInt8(i)], lease: nil) }
    do {
      for try await _ in store.watch(prefix: "/c", fromRevision: 1) {}
      XCTFail("the history before revision 5 is compacted")
    } catch let error as CoordinatorError {
      XCTAssertEqual(error.code, .invalidArgument)
    }
    var revisions: [Int64] = []
    for try await event in store.watch(prefix: "/c", fromRevision: 7) {
      revisions.append(event.revision)
      if revisions.count == 4 { break }
    }
    XCTAssertEqual(revisions, [7, 8, 9, 10])
  }
}
