import TaskGraph
import TaskGraphLinalg
import TaskGraphML
import XCTest

@testable import TaskGraphTraining

/// Messages between the master and workers: large vectors travel as parts of their own and
/// read back without a copy; the same message joined into one part of bytes reads back
/// equal.
final class WireTests: XCTestCase {
  private func doubleParts(_ payload: Payload) -> [[Double]] {
    payload.parts.compactMap { part in
      if case .doubles(let d) = part { return d }
      return nil
    }
  }

  func testLargeVectorsTravelAsPartsAndSmallOnesInline() throws {
    let job = try DistributedTraining.plan(DistributedTrainingTests.cancerJob()).description
    let wide = (0..<3000).map { Double($0) * 0.5 - 11 }
    let evaluate = MasterMessage.evaluate(job, Parameters(weights: wide, intercept: 0.25))
    let payload = evaluate.encoded(RoundTag(incarnation: 2, round: 9), light: true)
    XCTAssertEqual(doubleParts(payload), [wide], "the weights are a part of their own")
    // Joined into bytes (as a reader that knows no parts would see it): the same message.
    for form in [payload, Payload(payload.bytes)] {
      let (tag, message) = try MasterMessage.decodeTagged(form, known: job)
      XCTAssertEqual(tag, RoundTag(incarnation: 2, round: 9))
      XCTAssertEqual(message, evaluate)
    }
    let narrow = MasterMessage.evaluate(job, Parameters(weights: [1, 2, 3], intercept: 0))
    let small = narrow.encoded(light: true)
    XCTAssertEqual(small.parts.count, 1, "a short vector stays inline")
    XCTAssertEqual(try MasterMessage.decode(small, known: job), narrow)
  }

  func testGradientsAndScoresRoundTripInPartsAndJoined() throws {
    var sums = GradientSums(cols: WireWriter.partThreshold)
    sums.gradient = (0..<sums.gradient.count).map { -Double($0) / 3 }
    sums.loss = 12.5
    sums.intercept = -0.75
    sums.rows = 40
    let messages: [WorkerMessage] = [
      .sums(sums, computeMilliseconds: 3.5),
      .scored(
        predictions: (0..<700).map { Double($0) / 700 }, labels: (0..<700).map { Double($0 % 2) }),
      .refused("other data"),
    ]
    for message in messages {
      let payload = message.encoded(RoundTag(incarnation: 1, round: 4))
      for form in [payload, Payload(payload.bytes)] {
        let (tag, back) = try WorkerMessage.decodeTagged(form)
        XCTAssertEqual(tag, RoundTag(incarnation: 1, round: 4))
        XCTAssertEqual(back, message)
      }
    }
    XCTAssertEqual(
      doubleParts(messages[0].encoded()), [sums.gradient], "a gradient of 512 is a part")
    XCTAssertEqual(doubleParts(messages[1].encoded()).count, 2)
  }

  func testTruncatedOrMisdescribedMessagesAreRefused() throws {
    var sums = GradientSums(cols: 600)
    sums.rows = 3
    let payload = WorkerMessage.sums(sums, computeMilliseconds: 1).encoded()
    let bytes = payload.bytes
    // Cut anywhere: an error, never a crash or a wrong message.
    for cut in [0, 1, 8, 17, bytes.count / 2, bytes.count - 1] {
      XCTAssertThrowsError(try WorkerMessage.decode(Payload(Array(bytes[..<cut]))), "cut \(cut)")
    }
    // A part of doubles shorter than its count says: read inline, found truncated.
    var parts = payload.parts
    let index = try XCTUnwrap(
      parts.firstIndex {
        if case .doubles = $0 { return true }
        return false
      })
    parts[index] = .doubles([Double](repeating: 0, count: 599))
    XCTAssertThrowsError(try WorkerMessage.decode(Payload(parts: parts)))
  }
}
