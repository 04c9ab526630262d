import Foundation
import Logging
import TaskGraph
import TaskGraphData
import TaskGraphLinalg
import TaskGraphML
import XCTest

@testable import TaskGraphTraining

/// Columns partitioned (every worker holds every row and a share of the columns): the same
/// sums as one machine's, deterministic, and as fault-tolerant as rows partitioned.
final class ColumnPartitionTests: XCTestCase {
  func cancerJob(tolerance: Double = 1e-12) -> TrainingJob {
    DistributedTrainingTests.cancerJob(tolerance: tolerance)
  }

  func options(workers: Int) -> DistributedOptions {
    var options = DistributedOptions(workers: workers)
    options.partition = .columns
    return options
  }

  func tempDir() throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent(
      "taskgraph-columns-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url.path
  }

  /// Worker i of N holds columns ⌊d·i/N⌋ ..< ⌊d·(i+1)/N⌋: together every column once.
  func testSharesOfTheColumnsCoverEveryColumnOnce() {
    for (d, n) in [(30, 4), (7, 3), (3, 3), (1_000_000, 3)] {
      let ranges = (0..<n).map { Partition.columns(of: $0, count: n, total: d) }
      XCTAssertEqual(ranges.first?.lowerBound, 0)
      XCTAssertEqual(ranges.last?.upperBound, d)
      for (a, b) in zip(ranges, ranges.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound) }
      XCTAssertLessThanOrEqual(ranges.map(\.count).max()! - ranges.map(\.count).min()!, 1)
    }
    let m = Matrix<Double>(rows: 2, cols: 4, storage: [1, 2, 3, 4, 5, 6, 7, 8])
    XCTAssertEqual(m.columns(1..<3), Matrix(rows: 2, cols: 2, storage: [2, 3, 6, 7]))
    XCTAssertEqual(m.columns(2..<2).rows, 2)
  }

  /// The margins are one machine's up to the order of their additions (a worker's part,
  /// then the parts added), so the run follows one machine's L-BFGS path: objectives agree
  /// to 1e-14 relative on the first iterations, and the final model to 1e-12 of its
  /// largest coefficient, as with rows partitioned (the differences seen are about 1e-14).
  func testColumnsFollowOneMachinesPath() async throws {
    let job = cancerJob()
    let single = try LocalTraining.run(job)
    for workers in [2, 4] {
      let columns = try await DistributedTraining.runEmbedded(
        job, options: options(workers: workers))
      XCTAssertEqual(columns.training.trainRows, 569)
      let a = columns.training.objectives
      let b = single.training.objectives
      for k in 0..<5 { XCTAssertEqual(a[k], b[k], accuracy: 1e-14 * b[k]) }
      let scale = single.standardizedCoefficients.map(abs).max()!
      for (x, y) in zip(columns.standardizedCoefficients, single.standardizedCoefficients) {
        XCTAssertEqual(x, y, accuracy: 1e-12 * scale, "\(workers) workers")
      }
      XCTAssertEqual(
        columns.standardizedIntercept, single.standardizedIntercept, accuracy: 1e-12 * scale)
    }
  }

  /// Killed workers and a killed master, in either half of an evaluation (before the
  /// margins or before the gradient), some after acknowledging their request: the fault-free
  /// model, bit for bit. A gradient sent in blocks gives the same model as one sent whole.
  func testColumnsSurviveKillsAndBlocksBitForBit() async throws {
    var clean = options(workers: 3)
    clean.gradientBlockColumns = nil
    let whole = try await DistributedTraining.runEmbedded(cancerJob(), options: clean)
    var blocked = options(workers: 3)
    // Shares of 10 columns in blocks of 3 (at least 4 blocks): streamed, and placed as
    // they arrive.
    blocked.gradientBlockColumns = 3
    let streamed = try await DistributedTraining.runEmbedded(cancerJob(), options: blocked)
    XCTAssertEqual(streamed.standardizedCoefficients, whole.standardizedCoefficients)
    XCTAssertEqual(streamed.standardizedIntercept, whole.standardizedIntercept)

    var chaos = blocked
    chaos.checkpointDirectory = try tempDir()
    chaos.checkpointEvery = 3
    chaos.leaseTTL = .milliseconds(1500)
    chaos.workerGradientBlockColumns = [2: 4]
    chaos.chaos = ChaosPlan(kills: [
      .init(task: 2, epoch: 5), .init(task: 0, epoch: 12), .init(task: 3, epoch: 18),
      .init(task: 1, epoch: 25, afterAcknowledging: true),
    ])
    let (job, faulty) = (cancerJob(), chaos)
    let survived = try await withDeadline(
      .seconds(300), onTimeout: { Stalled(limit: .seconds(300)) }
    ) {
      try await DistributedTraining.runEmbedded(job, options: faulty)
    }
    XCTAssertEqual(survived.standardizedCoefficients, whole.standardizedCoefficients)
    XCTAssertEqual(survived.standardizedIntercept, whole.standardizedIntercept)
    XCTAssertEqual(survived.training.iterations, whole.training.iterations)
  }

  /// Every worker holds out the rows one machine holds out, and the master adds up their
  /// parts of those rows' margins: the validation metrics are one machine's (to the
  /// models' agreement).
  func testColumnsHoldOutTheRowsOneMachineDoes() async throws {
    var job = cancerJob()
    job.validationSplit = 0.2
    let single = try LocalTraining.run(job)
    let columns = try await DistributedTraining.runEmbedded(job, options: options(workers: 3))
    XCTAssertEqual(columns.training.validationRows, single.training.validationRows)
    XCTAssertEqual(columns.training.trainRows, single.training.trainRows)
    let a = try XCTUnwrap(columns.training.validationMetrics["log_loss"])
    let b = try XCTUnwrap(single.training.validationMetrics["log_loss"])
    XCTAssertEqual(a, b, accuracy: 1e-9 * b)
    XCTAssertEqual(
      columns.training.trainMetrics["log_loss"]!, single.training.trainMetrics["log_loss"]!,
      accuracy: 1e-9)
  }

  /// The exact solver, SGD and so bounded staleness are refused with columns partitioned.
  func testColumnsRefuseTheExactSolverAndStaleness() async throws {
    var exact = cancerJob()
    exact.configuration = TrainingConfiguration(kind: .linear, solver: .exact)
    var stale = cancerJob()
    stale.configuration.solver = .sgd
    var staleOptions = options(workers: 2)
    staleOptions.staleness = 1
    for (job, options, words) in [
      // SGD is the one solver staleness allows, and columns do not run it.
      (exact, options(workers: 2), "iterative solver"), (stale, staleOptions, "--solver sgd"),
    ] {
      do {
        _ = try await DistributedTraining.runEmbedded(job, options: options)
        XCTFail("\(words): must be refused")
      } catch let e as TrainingError {
        XCTAssertEqual(e.code, .invalidConfiguration)
        XCTAssertTrue(e.message.contains(words), e.message)
      }
    }
  }

  /// A worker answers a column job's requests for its own columns only.
  func testWorkerAnswersItsColumnsOnly() async throws {
    let plan = try DistributedTraining.plan(cancerJob(), partition: .columns)
    let worker = DistributedTraining.worker(
      taskID: 2, workers: 3, localDataPath: nil, logger: Logger(label: "test"))
    let sent = MessageLog()
    try await worker.handle(
      MasterMessage.load(plan.description).encoded(), notifyMaster: { sent.add($0) })
    guard case .loaded(let info) = try WorkerMessage.decode(sent.all[0]) else {
      return XCTFail("not loaded")
    }
    XCTAssertEqual(info.rows, 569)
    XCTAssertEqual(info.cols, Partition.columns(of: 1, count: 3, total: 30).count)
    // Weights of the whole width are another partition's request: refused.
    let wrong = MasterMessage.margins(
      plan.description, SentParameters(.zeros(features: 30)))
    do {
      try await worker.handle(wrong.encoded(), notifyMaster: { sent.add($0) })
      XCTFail("weights of 30 columns for a share of \(info.cols)")
    } catch let e as TrainingError {
      XCTAssertEqual(e.code, .mismatch)
    }
    let ones = [Double](repeating: 1, count: info.cols)
    try await worker.handle(
      MasterMessage.margins(
        plan.description, SentParameters(weights: SharedDoubles(ones), intercept: 0)
      )
      .encoded(), notifyMaster: { sent.add($0) })
    guard case .margins(let z, _) = try WorkerMessage.decode(sent.all[1]) else {
      return XCTFail("no margins")
    }
    // Row sums of the worker's columns, from the file itself.
    let all = try DataPipeline.apply(
      plan.pipeline, path: plan.description.dataPath, requireLabel: true, as: Double.self)
    let share = Partition.columns(of: 1, count: 3, total: 30)
    for i in [0, 100, 568] {
      let expected = share.reduce(0.0) { $0 + all.x[i, $1] }
      XCTAssertEqual(z[i], expected, accuracy: 1e-12 * max(1, abs(expected)))
    }
  }
}
