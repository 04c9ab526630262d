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
    let evaluate = MasterMessage.evaluate(
      job, SentParameters(Parameters(weights: wide, intercept: 0.25)))
    let payload = evaluate.encoded(RoundTag(incarnation: 2, round: 9), light: true)
    XCTAssertEqual(doubleParts(payload), [wide], "the weights are a part of their own")
    // Joined into bytes (as a reader that knows no parts would see it): the same message.
    for form in [payload, Payload(payload.bytes)] {
      let (tag, message) = try MasterMessage.decodeTagged(form, known: job)
      XCTAssertEqual(tag, RoundTag(incarnation: 2, round: 9))
      XCTAssertEqual(message, evaluate)
    }
    let narrow = MasterMessage.evaluate(
      job, SentParameters(Parameters(weights: [1, 2, 3], intercept: 0)))
    let small = narrow.encoded(light: true)
    XCTAssertEqual(small.parts.count, 1, "a short vector stays inline")
    XCTAssertEqual(try MasterMessage.decode(small, known: job), narrow)
  }

  func testReceivedVectorsAreReadInPlaceAtAnyAlignment() throws {
    let job = try DistributedTraining.plan(DistributedTrainingTests.cancerJob()).description
    let wide = (0..<3000).map { Double($0) * 0.5 - 11 }
    let evaluate = MasterMessage.evaluate(
      job, SentParameters(Parameters(weights: wide, intercept: 0.25)))
    let values = (0..<600).map { Double($0) * 1.25 }
    let block = WorkerMessage.gradientBlock(
      columns: 1000, offset: 400, values: SharedDoubles(values))
    for shift in [1, 3, 7] {
      // As the gRPC transport hands a message on: each vector left in the received bytes,
      // here `shift` bytes past an aligned start.
      let (_, master) = try MasterMessage.decodeTagged(
        received(evaluate.encoded(light: true), shift: shift), known: job)
      XCTAssertEqual(master, evaluate)
      guard case .evaluate(_, let p) = master else { return XCTFail("not an evaluation") }
      XCTAssertNil(p.weights.wholeArray, "the weights are read in place, not copied")
      XCTAssertEqual(p.parameters.weights, wide)
      let worker = try WorkerMessage.decode(received(block.encoded(), shift: shift))
      guard case .gradientBlock(let columns, let offset, let read) = worker else {
        return XCTFail("not a block")
      }
      XCTAssertNil(read.wholeArray, "the block is read in place, not copied")
      var assembly = GradientAssembly(tag: RoundTag())
      XCTAssertTrue(assembly.add(columns: columns, offset: offset, values: read))
      XCTAssertEqual(Array(assembly.gradient()[400..<1000]), values)
    }
  }

  func testBlocksSummedAsTheyArriveEqualTheSumOfTheWholeGradientsBitForBit() {
    let tag = RoundTag(incarnation: 4, round: 6)
    let columns = 1003
    var rng = SplitMix64(seed: 11)
    // Three workers' gradients, whose sums round differently when added in another order.
    let gradients = (0..<3).map { _ in
      (0..<columns).map { _ in Double.random(in: -1...1, using: &rng) * 1e3 }
    }
    let parts = gradients.map { GradientSums(loss: 0, gradient: $0, intercept: 0, rows: 1) }
    let reference = GradientSums.sum(parts).gradient
    let reordered = GradientSums.sum([parts[2], parts[0], parts[1]]).gradient
    XCTAssertNotEqual(
      reordered.map(\.bitPattern), reference.map(\.bitPattern), "the order shows in the bits")
    // Blocks of 100 columns (the last shorter), in a shuffled order, some twice, each read
    // in place at an odd byte as a received block is.
    var arrivals: [(worker: Int, offset: Int)] = []
    for worker in [3, 5, 9] {
      for offset in stride(from: 0, to: columns, by: 100) { arrivals.append((worker, offset)) }
    }
    arrivals += arrivals.prefix(7)
    arrivals.shuffle(using: &rng)
    var total = BlockTotal(tag: tag, workers: [3, 5, 9], columns: columns)
    for (k, arrival) in arrivals.enumerated() {
      XCTAssertFalse(total.isComplete, "complete before its last block (arrival \(k))")
      let values = gradients[[3, 5, 9].firstIndex(of: arrival.worker)!][
        arrival.offset..<min(columns, arrival.offset + 100)]
      total.add(
        worker: arrival.worker, offset: arrival.offset, values: shifted(Array(values), by: 3))
      if total.isComplete { break }
    }
    XCTAssertTrue(total.isComplete)
    XCTAssertEqual(total.gradient.map(\.bitPattern), reference.map(\.bitPattern))
    // Blocks that do not line up across workers leave the total incomplete.
    var uneven = BlockTotal(tag: tag, workers: [1, 2], columns: 10)
    uneven.add(worker: 1, offset: 0, values: SharedDoubles(Array(repeating: 1, count: 10)))
    uneven.add(worker: 2, offset: 0, values: SharedDoubles(Array(repeating: 2, count: 5)))
    uneven.add(worker: 2, offset: 5, values: SharedDoubles(Array(repeating: 2, count: 5)))
    XCTAssertFalse(uneven.isComplete)
    // Nor do blocks from a worker outside the round, or past the columns, count.
    var strange = BlockTotal(tag: tag, workers: [1, 2], columns: 4)
    strange.add(worker: 7, offset: 0, values: SharedDoubles([1, 2, 3, 4]))
    strange.add(worker: 1, offset: 2, values: SharedDoubles([1, 2, 3, 4]))
    strange.add(worker: 2, offset: 2, values: SharedDoubles([1, 2, 3, 4]))
    XCTAssertFalse(strange.isComplete)
    XCTAssertEqual(strange.gradient, [])
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

  func testGradientBlocksRoundTripAndAreChecked() throws {
    let values = (0..<600).map { Double($0) * 1.25 }
    let block = WorkerMessage.gradientBlock(
      columns: 2000, offset: 1200, values: SharedDoubles(values))
    var sums = GradientSums(cols: 0)
    sums.loss = 3
    sums.intercept = -1
    sums.rows = 17
    let closing = WorkerMessage.blockedSums(sums, columns: 2000, computeMilliseconds: 4.5)
    for message in [block, closing] {
      let payload = message.encoded(RoundTag(incarnation: 3, round: 8))
      for form in [payload, Payload(payload.bytes)] {
        let (tag, back) = try WorkerMessage.decodeTagged(form)
        XCTAssertEqual(tag, RoundTag(incarnation: 3, round: 8))
        XCTAssertEqual(back, message)
      }
    }
    // A block reaching past its gradient's columns is refused when read.
    let beyond = WorkerMessage.gradientBlock(
      columns: 1000, offset: 500, values: SharedDoubles(values))
    XCTAssertThrowsError(try WorkerMessage.decode(beyond.encoded()))
  }

  func testAGradientIsAssembledFromBlocksInAnyOrderOnce() throws {
    let tag = RoundTag(incarnation: 1, round: 2)
    let gradient = (0..<10).map { Double($0) - 4.5 }
    var closing = GradientSums(cols: 0)
    closing.loss = 7
    closing.rows = 3
    var assembly = GradientAssembly(tag: tag)
    XCTAssertTrue(assembly.close(closing, columns: 10, ms: 2))
    XCTAssertNil(assembly.closed, "no blocks yet")
    XCTAssertTrue(
      assembly.add(columns: 10, offset: 8, values: SharedDoubles(Array(gradient[8...]))))
    XCTAssertTrue(
      assembly.add(columns: 10, offset: 0, values: SharedDoubles(Array(gradient[0..<4]))))
    // The same block again (a replacement computed it again): counted once.
    XCTAssertTrue(
      assembly.add(columns: 10, offset: 0, values: SharedDoubles(Array(gradient[0..<4]))))
    XCTAssertNil(assembly.closed, "columns 4..<8 missing")
    // Overlapping a block, other columns, or past the end: refused, nothing changed.
    XCTAssertFalse(assembly.add(columns: 10, offset: 2, values: SharedDoubles([0, 0, 0])))
    XCTAssertFalse(assembly.add(columns: 12, offset: 4, values: SharedDoubles([0, 0, 0, 0])))
    XCTAssertFalse(assembly.add(columns: 10, offset: 7, values: SharedDoubles([0, 0, 0, 0])))
    XCTAssertTrue(
      assembly.add(columns: 10, offset: 4, values: SharedDoubles(Array(gradient[4..<8]))))
    let (whole, columns, ms) = try XCTUnwrap(assembly.closed)
    XCTAssertEqual(assembly.gradient(), gradient)
    XCTAssertEqual(whole.loss, 7)
    XCTAssertEqual(whole.rows, 3)
    XCTAssertEqual(columns, 10)
    XCTAssertEqual(ms, 2)
    // Closing sums that disagree with the blocks' columns are refused.
    var other = GradientAssembly(tag: tag)
    XCTAssertTrue(other.add(columns: 10, offset: 0, values: SharedDoubles(gradient)))
    XCTAssertFalse(other.close(closing, columns: 11, ms: 1))
    XCTAssertTrue(other.close(closing, columns: 10, ms: 1))
    XCTAssertNotNil(other.closed)
  }
}

/// `payload` as a transport that leaves vectors in the bytes it received hands it on: every
/// part of doubles becomes doubles read in place, `shift` bytes into a buffer.
private func received(_ payload: Payload, shift: Int) -> Payload {
  Payload(
    parts: payload.parts.map { part in
      guard case .doubles(let d) = part else { return part }
      return .sharedDoubles(shifted(d, by: shift))
    })
}

/// `values` read in place `shift` bytes into a buffer, as a received vector is.
private func shifted(_ values: [Double], by shift: Int) -> SharedDoubles {
  let bytes = [UInt8](repeating: 0x5a, count: shift) + values.withUnsafeBytes { Array($0) }
  return SharedDoubles(HeldBytes(bytes: bytes), byteOffset: shift, count: values.count)
}

private struct HeldBytes: SharedBytes {
  let bytes: [UInt8]

  func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try bytes.withUnsafeBytes(body)
  }
}
