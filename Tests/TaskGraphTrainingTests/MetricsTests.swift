import Foundation
import MetricsTestKit
import TaskGraph
import XCTest

@testable import TaskGraphTraining

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// The master's per-epoch metrics, and the Prometheus endpoint that serves them.
final class MetricsTests: XCTestCase {
  func testMasterRecordsEpochObjectiveWorkerTimesAndRecoveries() async throws {
    let backend = TestMetrics()
    var options = DistributedOptions(workers: 3)
    options.metrics = TrainingMetrics(factory: backend)
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "taskgraph-metrics-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    options.checkpointDirectory = dir.path
    options.checkpointEvery = 2
    options.leaseTTL = .milliseconds(1500)
    options.chaos = ChaosPlan(kills: [.init(task: 0, epoch: 9)])
    let model = try await DistributedTraining.runEmbedded(
      DistributedTrainingTests.cancerJob(), options: options)
    let epoch = try backend.expectGauge("taskgraph_epoch")
    XCTAssertGreaterThan(epoch.lastValue ?? 0, 9)
    let iteration = try backend.expectGauge("taskgraph_iteration")
    XCTAssertEqual(iteration.lastValue, Double(model.training.iterations))
    let objective = try backend.expectGauge("taskgraph_objective")
    XCTAssertEqual(objective.lastValue, model.training.objectives.last)
    let norm = try backend.expectGauge("taskgraph_gradient_norm")
    XCTAssertLessThan(norm.lastValue ?? .infinity, 1e-3)
    for w in 1...3 {
      let g = try backend.expectGauge(
        "taskgraph_worker_compute_milliseconds", [("worker", "\(w)")])
      XCTAssertGreaterThan(g.values.count, 5)
      XCTAssertTrue(g.values.allSatisfy { $0 >= 0 })
    }
    // The master killed at epoch 9 was replaced by a standby that restored a checkpoint.
    let recoveries = try backend.expectCounter("taskgraph_recoveries_total")
    XCTAssertEqual(recoveries.totalValue, 1)
  }

  func testEndpointServesPrometheusText() async throws {
    let (endpoint, metrics) = try await MetricsEndpoint.forTraining(host: "127.0.0.1", port: 0)
    defer { Task { await endpoint.close() } }
    XCTAssertGreaterThan(endpoint.port, 0)
    var report = EpochReport(
      epoch: 7, iteration: 5, objective: 0.25, epochMilliseconds: 3,
      slowestWorkerMilliseconds: 2, slowestComputeMilliseconds: 1.5, recoveries: 0)
    report.gradientNorm = 0.125
    metrics.record(report, workerMilliseconds: [1: 1.5, 2: 0.5])
    let (body, response) = try await get("http://127.0.0.1:\(endpoint.port)/metrics")
    XCTAssertEqual(response.statusCode, 200)
    let text = String(decoding: body, as: UTF8.self)
    for line in [
      "taskgraph_epoch 7.0", "taskgraph_iteration 5.0", "taskgraph_objective 0.25",
      "taskgraph_gradient_norm 0.125", #"taskgraph_worker_compute_milliseconds{worker="2"} 0.5"#,
    ] {
      XCTAssertTrue(text.contains(line), "missing '\(line)' in:\n\(text)")
    }
    let (_, missing) = try await get("http://127.0.0.1:\(endpoint.port)/other")
    XCTAssertEqual(missing.statusCode, 404)
  }

  func get(_ url: String) async throws -> (Data, HTTPURLResponse) {
    let (data, response) = try await URLSession.shared.data(from: URL(string: url)!)
    return (data, response as! HTTPURLResponse)
  }
}
