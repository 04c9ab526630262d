import Foundation
import Logging
import TaskGraph
import TaskGraphGRPC
import TaskGraphML
import XCTest

@testable import TaskGraphTraining

/// Workers that send their gradients in blocks of columns while computing them (the
/// default past 3 × 128 Ki features; here forced on the 30 features of breast_cancer.csv with
/// blocks of 7 columns, so 5 blocks per answer): the model equals the whole-gradient run's
/// and single-process training's within 1e-12, bit for bit from run to run, across gRPC,
/// and across killed workers and masters.
final class StreamedGradientTests: XCTestCase {
  private func cancerJob() -> TrainingJob { DistributedTrainingTests.cancerJob() }

  private func tempDir() throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent(
      "taskgraph-streamed-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url.path
  }

  private func options(workers: Int, blocks: Int? = 7) -> DistributedOptions {
    var options = DistributedOptions(workers: workers)
    options.gradientBlockColumns = blocks
    return options
  }

  private func assertClose(
    _ a: ModelFile, _ b: ModelFile, file: StaticString = #filePath, line: UInt = #line
  ) {
    let scale = b.standardizedCoefficients.map(abs).max()!
    for (x, y) in zip(a.standardizedCoefficients, b.standardizedCoefficients) {
      XCTAssertEqual(x, y, accuracy: 1e-12 * scale, file: file, line: line)
    }
    XCTAssertEqual(
      a.standardizedIntercept, b.standardizedIntercept, accuracy: 1e-12 * scale, file: file,
      line: line)
  }

  func testBlocksGiveTheWholeGradientsModelBitIdenticallyRunToRun() async throws {
    let whole = try await DistributedTraining.runEmbedded(
      cancerJob(), options: options(workers: 3, blocks: nil))
    let streamed = try await DistributedTraining.runEmbedded(
      cancerJob(), options: options(workers: 3))
    let again = try await DistributedTraining.runEmbedded(
      cancerJob(), options: options(workers: 3))
    assertClose(streamed, whole)
    assertClose(streamed, try LocalTraining.run(cancerJob()))
    XCTAssertEqual(streamed.standardizedCoefficients, again.standardizedCoefficients)
    XCTAssertEqual(streamed.standardizedIntercept, again.standardizedIntercept)
    XCTAssertEqual(streamed.training.iterations, whole.training.iterations)
  }

  func testWorkersWhoseBlocksDoNotLineUpGiveTheSameModelBitForBit() async throws {
    // Blocks of 7 columns from every worker are summed over the workers as they come; with
    // worker 2 in blocks of 5 they do not line up, and the master joins each worker's blocks
    // and sums the whole gradients instead. A column's value does not depend on the blocks,
    // and the two sums make the same adds: the same model, bit for bit.
    let lined = try await DistributedTraining.runEmbedded(
      cancerJob(), options: options(workers: 3))
    var mixed = options(workers: 3)
    mixed.workerGradientBlockColumns = [2: 5]
    let uneven = try await DistributedTraining.runEmbedded(cancerJob(), options: mixed)
    XCTAssertEqual(lined.standardizedCoefficients, uneven.standardizedCoefficients)
    XCTAssertEqual(lined.standardizedIntercept, uneven.standardizedIntercept)
    XCTAssertEqual(lined.training.iterations, uneven.training.iterations)
  }

  func testAWorkerSendsItsBlocksThenTheSums() async throws {
    let plan = try DistributedTraining.plan(cancerJob())
    let d = plan.pipeline.featureNames.count
    let worker = ParameterServerWorker(
      taskID: 1, workerCount: 1, localDataPath: nil, logger: Logger(label: "test"),
      gradientBlockColumns: 7)
    let sent = MessageLog()
    try await worker.handle(MasterMessage.load(plan.description).encoded()) { sent.add($0) }
    let weights = (0..<d).map { Double($0) / 100 }
    let p = Parameters(weights: weights, intercept: 0.5)
    try await worker.handle(MasterMessage.evaluate(plan.description, SentParameters(p)).encoded()) {
      sent.add($0)
    }
    let answers = try sent.all.dropFirst().map { try WorkerMessage.decode($0) }
    var assembly = GradientAssembly(tag: RoundTag())
    var blocks = 0
    for answer in answers {
      switch answer {
      case .gradientBlock(let columns, let offset, let values):
        blocks += 1
        XCTAssertTrue(assembly.add(columns: columns, offset: offset, values: values))
      case .blockedSums(let sums, let columns, let ms):
        XCTAssertEqual(answer, answers.last, "the sums come after every block")
        XCTAssertTrue(assembly.close(sums, columns: columns, ms: ms))
      default: XCTFail("unexpected answer \(answer)")
      }
    }
    XCTAssertEqual(blocks, (d + 6) / 7)
    var streamed = try XCTUnwrap(assembly.closed, "incomplete").sums
    streamed.gradient = assembly.gradient()
    // The same sums as a worker sending its gradient whole, within 1e-12 relative.
    let whole = ParameterServerWorker(
      taskID: 1, workerCount: 1, localDataPath: nil, logger: Logger(label: "test"),
      gradientBlockColumns: nil)
    let log = MessageLog()
    try await whole.handle(MasterMessage.load(plan.description).encoded()) { log.add($0) }
    try await whole.handle(MasterMessage.evaluate(plan.description, SentParameters(p)).encoded()) {
      log.add($0)
    }
    guard case .sums(let reference, _) = try WorkerMessage.decode(log.all[1]) else {
      return XCTFail("no sums")
    }
    let scale = reference.gradient.map(abs).max()!
    for (a, b) in zip(streamed.gradient, reference.gradient) {
      XCTAssertEqual(a, b, accuracy: 1e-12 * scale)
    }
    XCTAssertEqual(streamed.loss, reference.loss, accuracy: 1e-12 * abs(reference.loss))
    XCTAssertEqual(streamed.rows, reference.rows)
  }

  func testBlocksOverGRPCGiveTheEmbeddedModel() async throws {
    let embedded = try await DistributedTraining.runEmbedded(
      cancerJob(), options: options(workers: 2))
    let transport = GRPCTransport()
    let result: Result<ModelFile, any Error>
    do {
      result = .success(
        try await DistributedTraining.runInProcess(
          cancerJob(), options: options(workers: 2), coordinator: InMemoryCoordinator(),
          transport: transport, jobName: "streamed"))
    } catch {
      result = .failure(error)
    }
    await transport.close()
    let overGRPC = try result.get()
    XCTAssertEqual(overGRPC.standardizedCoefficients, embedded.standardizedCoefficients)
    XCTAssertEqual(overGRPC.standardizedIntercept, embedded.standardizedIntercept)
  }

  func testKilledWorkersAndMasterGiveTheFaultFreeModel() async throws {
    let clean = try await DistributedTraining.runEmbedded(
      cancerJob(), options: options(workers: 3))
    var chaos = options(workers: 3)
    chaos.checkpointDirectory = try tempDir()
    chaos.checkpointEvery = 3
    chaos.leaseTTL = .milliseconds(1000)
    chaos.chaos = ChaosPlan(kills: [
      .init(task: 2, epoch: 4), .init(task: 0, epoch: 9),
      .init(task: 3, epoch: 13, afterAcknowledging: true),
    ])
    let (job, plan) = (cancerJob(), chaos)
    let faulty = try await withDeadline(
      .seconds(300), onTimeout: { Stalled(limit: .seconds(300)) },
      { try await DistributedTraining.runEmbedded(job, options: plan) })
    XCTAssertEqual(faulty.standardizedCoefficients, clean.standardizedCoefficients)
    XCTAssertEqual(faulty.standardizedIntercept, clean.standardizedIntercept)
    XCTAssertEqual(faulty.training.iterations, clean.training.iterations)
  }

  /// Bounded staleness with a straggler: rounds overlap, so blocks of different rounds
  /// arrive interleaved; every step still gets whole gradients, and the run converges as
  /// the whole-gradient SSP run does.
  func testBoundedStalenessWithBlocks() async throws {
    var job = cancerJob()
    job.configuration.solver = .sgd
    job.configuration.sgd = SGDConfiguration(
      batchSize: 1 << 20, schedule: .constant(eta0: 0.5), sampling: .sequentialRanges)
    job.configuration.stop = StopCriteria([.maxIterations(120)])
    let bsp = try await DistributedTraining.runEmbedded(job, options: options(workers: 3))
    var ssp = options(workers: 3)
    ssp.staleness = 2
    ssp.workerDelays = [3: .milliseconds(15)]
    let reports = ReportLog()
    let stale = try await DistributedTraining.runEmbedded(
      job, options: ssp, epochReport: { reports.add($0) })
    XCTAssertEqual(stale.training.iterations, 120)
    XCTAssertGreaterThan(reports.all.last?.staleContributions ?? 0, 20)
    let (a, b) = (bsp.training.objective, stale.training.objective)
    XCTAssertEqual(a, b, accuracy: 5e-2 * a)
  }
}
