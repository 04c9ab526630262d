import XCTest

@testable import TaskGraph

final class StateMachineTests: XCTestCase {
  func testBackoffGrowsAndCaps() {
    let b = Backoff(initial: .milliseconds(10), multiplier: 2, maximum: .milliseconds(100))
    XCTAssertEqual(b.delay(attempt: 1), .milliseconds(10))
    XCTAssertEqual(b.delay(attempt: 2), .milliseconds(20))
    XCTAssertEqual(b.delay(attempt: 4), .milliseconds(80))
    XCTAssertEqual(b.delay(attempt: 5), .milliseconds(100))
    XCTAssertEqual(b.delay(attempt: 500), .milliseconds(100))
  }

  func testBackoffJitterShavesAtMostTheFraction() {
    let b = Backoff(
      initial: .milliseconds(100), multiplier: 1, maximum: .milliseconds(100), jitter: 0.5)
    XCTAssertEqual(b.delay(attempt: 1, random: 0), .milliseconds(100))
    XCTAssertEqual(b.delay(attempt: 1, random: 0.5), .milliseconds(75))
    XCTAssertEqual(b.delay(attempt: 1, random: 1), .milliseconds(50))
  }

  func testRetryPolicyDirectives() {
    let policy = RetryPolicy(
      backoff: Backoff(initial: .milliseconds(10), multiplier: 2, maximum: .seconds(1)),
      attemptTimeout: .seconds(1), permanentFailureRetries: 1)
    let unavailable = TransportError(code: .unavailable, message: "")
    XCTAssertEqual(
      policy.decide(error: unavailable, attempt: 3, requestEpoch: 5, currentEpoch: 5),
      .retry(after: .milliseconds(40)))
    XCTAssertEqual(
      policy.decide(
        error: TransportError(code: .deadlineExceeded, message: ""), attempt: 1, requestEpoch: 5,
        currentEpoch: 5),
      .retry(after: .milliseconds(10)))
    // The requester moved on: nothing to deliver any more.
    guard
      case .drop = policy.decide(error: unavailable, attempt: 1, requestEpoch: 5, currentEpoch: 6)
    else { return XCTFail() }
    // A server ahead of the request: the request's epoch is over.
    guard
      case .drop = policy.decide(
        error: .staleEpoch(server: 6, request: 5), attempt: 1, requestEpoch: 5, currentEpoch: 5)
    else { return XCTFail() }
    // A server behind the request: it will catch up; retry.
    XCTAssertEqual(
      policy.decide(
        error: .staleEpoch(server: 4, request: 5), attempt: 1, requestEpoch: 5, currentEpoch: 5),
      .retry(after: .milliseconds(10)))
    let failed = TransportError(code: .handlerFailed, message: "boom")
    XCTAssertEqual(
      policy.decide(error: failed, attempt: 1, requestEpoch: 5, currentEpoch: 5),
      .retry(after: .milliseconds(10)))
    guard case .fail = policy.decide(error: failed, attempt: 2, requestEpoch: 5, currentEpoch: 5)
    else { return XCTFail() }
  }

  func testEpochBookDeliversOncePerRequestAndOnlyInItsEpoch() {
    var book = EpochBook()
    XCTAssertEqual(book.admit(requestEpoch: 0), .hold, "no epoch read yet: wait for one")
    XCTAssertTrue(book.advance(to: 3))
    XCTAssertFalse(book.advance(to: 3))
    XCTAssertFalse(book.advance(to: 2), "epochs never go back")
    let key = RequestKey(from: 1, to: 2, epoch: 3, id: 7)
    XCTAssertTrue(book.acceptResponse(key))
    XCTAssertFalse(book.acceptResponse(key), "a duplicate response is not delivered")
    XCTAssertTrue(book.acceptResponse(RequestKey(from: 1, to: 2, epoch: 3, id: 8)))
    XCTAssertFalse(book.acceptResponse(RequestKey(from: 1, to: 2, epoch: 2, id: 9)))
    XCTAssertEqual(book.admit(requestEpoch: 3), .serve)
    XCTAssertEqual(book.admit(requestEpoch: 2), .refuse(serverEpoch: 3))
    XCTAssertEqual(book.admit(requestEpoch: 4), .hold, "a request ahead waits for its epoch")
    XCTAssertTrue(book.advance(to: 4))
    XCTAssertFalse(book.isCurrent(3))
    XCTAssertFalse(
      book.acceptResponse(RequestKey(from: 1, to: 2, epoch: 3, id: 10)),
      "a response of a stale epoch is dropped")
  }

  func testSlotClaimRecognisesOwnRetriedCreate() {
    let mine = AddressRecord(nodeID: "n1", address: "a")
    let theirs = AddressRecord(nodeID: "n2", address: "b")
    XCTAssertEqual(SlotClaim.decide(created: true, existing: nil, nodeID: "n1"), .claimed)
    XCTAssertEqual(SlotClaim.decide(created: false, existing: mine, nodeID: "n1"), .claimed)
    XCTAssertEqual(
      SlotClaim.decide(created: false, existing: theirs, nodeID: "n1"), .taken(byNode: "n2"))
  }

  func testEpochAdvanceIsIdempotent() {
    XCTAssertTrue(EpochAdvance.succeeded(casResult: true, from: 3, reread: nil))
    XCTAssertTrue(EpochAdvance.succeeded(casResult: false, from: 3, reread: 4))
    XCTAssertFalse(EpochAdvance.succeeded(casResult: false, from: 3, reread: 3))
    XCTAssertFalse(EpochAdvance.succeeded(casResult: false, from: 3, reread: nil))
  }

  func testRecordsRoundTrip() {
    XCTAssertEqual(
      AddressRecord(AddressRecord(nodeID: "ab", address: "h:1 x").bytes)?.address, "h:1 x")
    XCTAssertEqual(
      MetaRecord(MetaRecord(epoch: 12, meta: "a b").bytes), MetaRecord(epoch: 12, meta: "a b"))
    let layout = JobLayout(job: "j")
    XCTAssertEqual(layout.classify(layout.address(3)), .address(task: 3))
    XCTAssertEqual(layout.classify(layout.meta(4, "parents")), .meta(task: 4, linkType: "parents"))
    XCTAssertEqual(layout.classify(layout.epoch), .epoch)
    XCTAssertEqual(layout.classify("/taskgraph/other/epoch"), .other)
  }
}
