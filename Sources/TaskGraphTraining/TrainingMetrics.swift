import CoreMetrics
import Foundation

/// The master's per-epoch figures as swift-metrics gauges and counters, for any metrics
/// backend (the CLI's `--metrics-port` serves them in Prometheus text format).
///
/// | name | kind | meaning |
/// |---|---|---|
/// | `taskgraph_epoch` | gauge | the runtime's current epoch |
/// | `taskgraph_iteration` | gauge | optimizer iterations completed |
/// | `taskgraph_objective` | gauge | objective after the last step |
/// | `taskgraph_gradient_norm` | gauge | gradient norm after the last step |
/// | `taskgraph_epoch_milliseconds` | gauge | last epoch, broadcast to the last answer |
/// | `taskgraph_worker_compute_milliseconds{worker}` | gauge | each worker's kernel time |
/// | `taskgraph_recoveries_total` | counter | checkpoint restores and replaced workers seen by this master |
public final class TrainingMetrics: Sendable {
  let factory: any MetricsFactory
  let epoch: Gauge
  let iteration: Gauge
  let objective: Gauge
  let gradientNorm: Gauge
  let epochMilliseconds: Gauge
  let recoveries: Counter

  /// Metrics created on `factory` (by default the process's bootstrapped backend).
  public init(factory: any MetricsFactory = MetricsSystem.factory) {
    self.factory = factory
    epoch = Gauge(label: "taskgraph_epoch", factory: factory)
    iteration = Gauge(label: "taskgraph_iteration", factory: factory)
    objective = Gauge(label: "taskgraph_objective", factory: factory)
    gradientNorm = Gauge(label: "taskgraph_gradient_norm", factory: factory)
    epochMilliseconds = Gauge(label: "taskgraph_epoch_milliseconds", factory: factory)
    recoveries = Counter(label: "taskgraph_recoveries_total", factory: factory)
  }

  /// Records an optimizer step's figures.
  func stepped(iteration: Int, objective: Double?, gradientNorm: Double?) {
    self.iteration.record(Double(iteration))
    if let objective { self.objective.record(objective) }
    if let gradientNorm { self.gradientNorm.record(gradientNorm) }
  }

  /// Records one epoch's figures and each worker's compute milliseconds.
  func record(_ report: EpochReport, workerMilliseconds: [Int: Double]) {
    epoch.record(Double(report.epoch))
    stepped(
      iteration: report.iteration, objective: report.objective,
      gradientNorm: report.gradientNorm)
    epochMilliseconds.record(report.epochMilliseconds)
    for (w, ms) in workerMilliseconds.sorted(by: { $0.key < $1.key }) {
      Gauge(
        label: "taskgraph_worker_compute_milliseconds", dimensions: [("worker", "\(w)")],
        factory: factory
      ).record(ms)
    }
  }

  /// Counts a recovery: a restore from a checkpoint or a replaced worker.
  func recovered() {
    recoveries.increment()
  }
}
