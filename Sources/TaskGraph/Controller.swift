/// Lays out a job in a coordinator and waits for it to finish.
///
/// `create()` writes `status = running`, `epoch = 0` and the spec (the spec last: nodes
/// treat its presence as "the job exists"); `waitForCompletion()` follows `status` until a
/// task shuts the job down.
public struct Controller: Sendable {
  /// The job's layout.
  public let layout: JobLayout
  /// The job's spec.
  public let spec: JobSpec
  private let coordinator: any Coordinator

  /// A controller of `job` with `spec` on `coordinator`.
  public init(coordinator: any Coordinator, job: String, spec: JobSpec) {
    self.coordinator = coordinator
    self.layout = JobLayout(job: job)
    self.spec = spec
  }

  /// Lays out the job; throws `CoordinatorError.jobExists` if a job of that name exists.
  public func create() async throws {
    let fresh = try await coordinator.create(
      layout.status, Array(JobLayout.running.utf8), lease: nil)
    guard fresh else {
      throw CoordinatorError(code: .jobExists, message: "job \(layout.job) already exists")
    }
    try await coordinator.put(layout.epoch, epochBytes(0), lease: nil)
    try await coordinator.put(layout.spec, spec.bytes, lease: nil)
  }

  /// Waits until the job's status is `done`.
  public func waitForCompletion() async throws {
    while true {
      let (entries, revision) = try await coordinator.getPrefix(layout.status)
      if entries.contains(where: { $0.key == layout.status && $0.string == JobLayout.done }) {
        return
      }
      for try await event in coordinator.watch(prefix: layout.status, fromRevision: revision + 1) {
        if case .put(let kv) = event, kv.key == layout.status, kv.string == JobLayout.done {
          return
        }
      }
      try Task.checkCancellation()
    }
  }

  /// The current epoch, or nil if the job does not exist.
  public func epoch() async throws -> UInt64? {
    try await coordinator.get(layout.epoch).flatMap { parseEpoch($0.value) }
  }

  /// The records the tasks published, by name.
  public func records() async throws -> [String: [UInt8]] {
    let (entries, _) = try await coordinator.getPrefix(layout.recordsPrefix)
    var out: [String: [UInt8]] = [:]
    for kv in entries {
      out[String(kv.key.dropFirst(layout.recordsPrefix.count))] = kv.value
    }
    return out
  }
}
