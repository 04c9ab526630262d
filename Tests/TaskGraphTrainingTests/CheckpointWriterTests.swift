import Foundation
import Logging
import TaskGraph
import TaskGraphML
import XCTest

@testable import TaskGraphTraining

/// A store whose saves wait until the test lets them finish, and that tells the test when
/// one begins: the order of events is then fixed without timing.
private actor GatedStore: CheckpointStore {
  private(set) var saved: [UInt64] = []
  private var gates: [CheckedContinuation<Void, Never>] = []
  let started: AsyncStream<UInt64>
  private let startedSink: AsyncStream<UInt64>.Continuation

  init() { (started, startedSink) = AsyncStream.makeStream() }

  func save(_ checkpoint: Checkpoint, name: String) async throws {
    startedSink.yield(checkpoint.epoch)
    await withCheckedContinuation { gates.append($0) }
    saved.append(checkpoint.epoch)
  }

  /// Lets the oldest waiting save finish; false if none waits yet.
  func release() -> Bool {
    guard !gates.isEmpty else { return false }
    gates.removeFirst().resume()
    return true
  }

  func latest(name: String) async throws -> (checkpoint: Checkpoint, warnings: [String])? { nil }
  func epochs(name: String) async throws -> [UInt64] { saved }
}

final class CheckpointWriterTests: XCTestCase {
  private func checkpoint(epoch: UInt64) -> MasterCheckpoint {
    let optimizer = Optimizer(
      configuration: OptimizerConfiguration(
        method: .lbfgs(memory: 3), regularization: Regularization(l2: 0.1)),
      initial: Parameters(weights: [0.5, -1, .pi, 3.25], intercept: 0.1), rowCount: 10)
    return MasterCheckpoint(
      epoch: epoch, round: epoch, optimizer: optimizer, objectives: [1, 0.5], rows: 10,
      labelSum: 1, labelSquares: 2, dropped: 0, validationRows: 0, dataFingerprint: "d",
      configFingerprint: "c")
  }

  /// One write at a time, in order; a checkpoint taken while another is written waits, and a
  /// newer one supersedes it; `flush` returns once the newest is saved.
  func testWritesOneAtATimeAndANewerCheckpointSupersedesAWaitingOne() async throws {
    let store = GatedStore()
    let writer = CheckpointWriter(store: store, logger: Logger(label: "test"))
    var started = store.started.makeAsyncIterator()
    await writer.submit(checkpoint(epoch: 1))
    let first = await started.next()
    XCTAssertEqual(first, 1)
    // Epoch 1 is being written: 2 waits, then 3 replaces it.
    await writer.submit(checkpoint(epoch: 2))
    await writer.submit(checkpoint(epoch: 3))
    let releasedFirst = await store.release()
    XCTAssertTrue(releasedFirst)
    let second = await started.next()
    XCTAssertEqual(second, 3)
    let releasedSecond = await store.release()
    XCTAssertTrue(releasedSecond)
    await writer.flush()
    let saved = await store.saved
    XCTAssertEqual(saved, [1, 3])
    let (written, superseded) = (await writer.written, await writer.superseded)
    XCTAssertEqual(written, 2)
    XCTAssertEqual(superseded, 1)
    let timings = await writer.milliseconds
    XCTAssertEqual(timings.count, 2)
  }

  /// What the writer saves is the checkpoint as the master took it, in the directory store's
  /// checked format: it reads back equal.
  func testWrittenCheckpointReadsBack() async throws {
    let directory = NSTemporaryDirectory() + "tg-writer-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let store = try DirectoryCheckpointStore(directory: directory)
    let writer = CheckpointWriter(store: store, logger: Logger(label: "test"))
    let taken = checkpoint(epoch: 7)
    await writer.submit(taken)
    await writer.flush()
    let latest = try await store.latest(name: "master")
    let data = try XCTUnwrap(latest).checkpoint.data
    let read = try VectorSink.decode(MasterCheckpoint.self, from: data)
    XCTAssertEqual(read.epoch, 7)
    XCTAssertEqual(read.round, taken.round)
    XCTAssertEqual(read.objectives, taken.objectives)
    XCTAssertEqual(read.optimizer.parameters, taken.optimizer.parameters)
    XCTAssertEqual(read.optimizer.iteration, taken.optimizer.iteration)
    XCTAssertEqual(read.rows, taken.rows)
    XCTAssertEqual(read.labelSquares, taken.labelSquares)
    XCTAssertEqual(read.dataFingerprint, taken.dataFingerprint)
    XCTAssertEqual(read.configFingerprint, taken.configFingerprint)
  }
}

final class BackgroundCheckpointTrainingTests: XCTestCase {
  /// In a training run every checkpoint taken is either written or superseded, and the
  /// newest few are on disk and verify.
  func testEveryCheckpointTakenIsWrittenOrSuperseded() async throws {
    let directory = NSTemporaryDirectory() + "tg-bgckpt-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let data = directory + "/problem.npy"
    try TrainingBenchmark.generate(rows: 3000, cols: 6, seed: 5, path: data)
    let checkpoints = directory + "/ckpt"
    let with = try await TrainingBenchmark.embedded(
      path: data, rows: 3000, cols: 6, workers: 2, epochs: 12, checkpointDirectory: checkpoints,
      checkpointEvery: 2)
    // 12 steps, a checkpoint every 2.
    XCTAssertEqual(with.checkpoints_written + with.checkpoints_superseded, 6)
    XCTAssertGreaterThanOrEqual(with.checkpoints_written, 1)
    XCTAssertGreaterThan(with.checkpoint_write_ms, 0)
    let store = try DirectoryCheckpointStore(directory: checkpoints)
    let kept = try await store.epochs(name: "master")
    XCTAssertEqual(kept.count, min(3, with.checkpoints_written))
    let newest = try await store.latest(name: "master")
    XCTAssertEqual(newest?.warnings, [])
    let state = try VectorSink.decode(
      MasterCheckpoint.self, from: try XCTUnwrap(newest).checkpoint.data)
    XCTAssertEqual(state.rows, 3000)
    XCTAssertGreaterThan(state.optimizer.iteration, 0)

    // The cost: each run's mean against its own median. Without checkpoints the mean is
    // 5% over the median; with them 10% over a median 20% higher: a cost of 5%.
    var plain = with
    (plain.epoch_ms, plain.epoch_mean_ms) = (10, 10.5)
    var checkpointed = with
    (checkpointed.epoch_ms, checkpointed.epoch_mean_ms) = (12, 13.2)
    plain.setCheckpointCost(from: checkpointed)
    XCTAssertEqual(plain.checkpoint_cost_percent, 5, accuracy: 1e-9)
    XCTAssertEqual(plain.checkpoint_ms, 0.5, accuracy: 1e-9)
    XCTAssertEqual(plain.checkpoints_written, with.checkpoints_written)
  }
}
