import ArgumentParser
import Foundation
import TaskGraphEtcd
import TaskGraphGRPC
import TaskGraphLinalg
import TaskGraphTestSupport
import TaskGraphTraining

struct BenchCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench",
    abstract: "Measure kernels and the runtime against the machine's limits.",
    subcommands: [BenchGradient.self, BenchTrain.self, BenchRuntime.self]
  )
}

struct BenchGradient: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "gradient",
    abstract: "Time one gradient pass: fused kernel, two-call BLAS baseline, and memory floor.",
    discussion: """
      Builds a random rows×cols problem in memory and times, in the same run, the fused \
      kernel (X read once), the pass by blocks of columns that workers with wide shards run \
      (margins, then the gradient slice by slice), the two-call baseline (gemv then \
      transposed gemv, X read twice) and a STREAM-style read of the same bytes. Prints median \
      ms per pass, GB/s and ratios.
      """
  )

  @Option(help: "Rows of the generated matrix.") var rows = 1_000_000
  @Option(help: "Columns of the generated matrix.") var cols = 100
  @Option(help: "Loss: squared or logistic.") var loss: RowLoss = .squared
  @Option(help: "Element type: float64 or float32.") var precision: Precision = .float64
  @Option(help: "Threads for every variant.") var threads = 1
  @Option(help: "Timed passes per variant (the median is reported).") var iterations = 10
  @Option(
    help:
      "The fused kernel's instruction set: auto (what training uses for this shape), avx512, avx2 or portable."
  )
  var isa: ISAChoice = .auto
  @Flag(help: "Print one JSON object instead of a table.") var json = false

  enum ISAChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, avx512, avx2, portable
    var instructionSet: FusedGradient.InstructionSet? {
      switch self {
      case .auto: nil
      case .avx512: .avx512
      case .avx2: .avx2
      case .portable: .portable
      }
    }
  }

  func validate() throws {
    if let set = isa.instructionSet, set > FusedGradient.InstructionSet.best {
      throw ValidationError(
        "--isa \(isa.rawValue): this processor supports \(FusedGradient.InstructionSet.supported.map { "\($0)" }.joined(separator: ", "))"
      )
    }
    guard rows > 0, cols > 0 else { throw ValidationError("--rows and --cols must be positive") }
    guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    guard iterations >= 1 else { throw ValidationError("--iterations must be at least 1") }
  }

  func run() throws {
    var config = GradientBenchmark.Config(rows: rows, cols: cols)
    config.loss = loss
    config.threads = threads
    config.iterations = iterations
    config.instructionSet = isa.instructionSet
    let r =
      precision == .float64
      ? GradientBenchmark.run(config, scalar: Double.self)
      : GradientBenchmark.run(config, scalar: Float.self)
    if json {
      let enc = JSONEncoder()
      enc.outputFormatting = [.sortedKeys]
      print(String(decoding: try enc.encode(r), as: UTF8.self))
      return
    }
    print(
      "gradient pass: \(r.rows)×\(r.cols) \(r.precision), \(r.loss) loss, \(r.threads) thread(s), "
        + "\(String(format: "%.1f", Double(r.bytes) / 1e6)) MB, fused kernel \(r.instruction_set), "
        + "OpenBLAS kernel \(r.openblas_core)")
    var rowsOut = [
      ("fused kernel (X read once)", r.fused_ms, r.fused_gbps),
      ("fused, BLAS blocks", r.blas_blocks_ms, Double(r.bytes) / (r.blas_blocks_ms * 1e6)),
      (
        "by blocks of columns", r.column_blocks_ms,
        Double(r.bytes) / (r.column_blocks_ms * 1e6)
      ),
      ("two-call BLAS (X read twice)", r.two_call_ms, r.two_call_gbps),
      ("memory floor (STREAM read)", r.limit_ms, r.limit_gbps),
    ]
    if let avx2 = r.fused_avx2_ms {
      rowsOut.insert(("fused, AVX2 code", avx2, Double(r.bytes) / (avx2 * 1e6)), at: 1)
    }
    print("variant                          ms/pass      GB/s")
    for (name, ms, gb) in rowsOut {
      print(
        name.padding(toLength: 30, withPad: " ", startingAt: 0)
          + String(format: "%10.2f %9.1f", ms, gb))
    }
    print(
      String(
        format: "fused / floor: %.2f×   two-call / fused: %.2f×", r.fused_over_limit,
        r.two_call_over_fused))
    print(
      String(
        format: "max relative gradient difference fused vs two-call: %.1e",
        r.max_relative_difference))
  }
}

extension RowLoss: ExpressibleByArgument {}

struct BenchTrain: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "train",
    abstract: "Time parameter-server epochs: slowest worker's compute against the overhead.",
    discussion: """
      Generates a rows×cols problem (written once as .npy in a temporary directory), then \
      runs L-BFGS ridge epochs with each worker count, embedded (in-memory coordinator, \
      in-process transport) and over gRPC + etcd (a private etcd on a free loopback port; \
      every task holds its own lease and talks loopback gRPC).

      Prints the median epoch time, the slowest worker's compute, the master's optimizer \
      step, the rest (the framework's overhead: messages, coordination, summing); the cost \
      of checkpoints (every --checkpoint-every steps, written in the background) in percent \
      of the epoch: by how much more the mean epoch exceeds the median with checkpoints \
      than without, each run against its own median, so that a change in the machine's \
      speed between the runs cancels; the median time of one checkpoint write and how \
      many were written of those taken (a checkpoint taken while another is written waits, \
      and a newer one supersedes it); and the slowest worker's shard load when parsing the \
      source and when reloading its shard cache.

      Workers of more than 393,216 columns send their gradients in blocks while they \
      compute them, so the sending of all blocks but the last overlaps the compute column \
      instead of adding to the overhead; --gradient-blocks 0 sends them whole, for \
      comparison. --partition rows,columns runs every configuration with the rows and \
      with the columns partitioned (wide problems: the master then moves d values per \
      evaluation instead of workers × d, for one more round trip).
      """
  )

  @Option(help: "Rows of the generated problem.") var rows = 1_000_000
  @Option(help: "Columns of the generated problem.") var cols = 100
  @Option(help: "Comma-separated worker counts.") var workers = "1,2,4"
  @Option(help: "Epochs per configuration.") var epochs = 12
  @Option(help: "Comma-separated modes: embedded, grpc.") var modes = "embedded,grpc"
  @Option(help: "Checkpoint every this many steps in the run with checkpoints.")
  var checkpointEvery = 1
  @OptionGroup var gradientBlocks: GradientBlockFlags
  @Option(
    help:
      "Comma-separated partitions to run: rows, columns (each worker gets only its columns' weights and sends only their gradient; one more round trip per evaluation)."
  )
  var partition = "rows"
  @Flag(help: "Print JSON lines instead of a table.") var json = false

  func validate() throws {
    guard rows > 0, cols > 0 else { throw ValidationError("--rows and --cols must be positive") }
    guard epochs >= 3 else { throw ValidationError("--epochs must be at least 3") }
    guard checkpointEvery >= 1 else {
      throw ValidationError("--checkpoint-every must be at least 1")
    }
    for m in list(modes) where m != "embedded" && m != "grpc" {
      throw ValidationError("unknown mode '\(m)' (embedded, grpc)")
    }
    for p in list(partition) where Partition(rawValue: p) == nil {
      throw ValidationError("unknown partition '\(p)' (rows, columns)")
    }
  }

  func run() async throws {
    Log.setup(verbose: false)
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "taskgraph-bench-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("problem.npy").path
    try TrainingBenchmark.generate(rows: rows, cols: cols, seed: 1, path: path)
    let etcd = list(modes).contains("grpc") ? try await EtcdTestServer.start() : nil
    // The private etcd stops however the run ends: a failed run must not leave it behind.
    try await withCleanup {
      try await table(path: path, dir: dir, etcd: etcd)
    } cleanup: {
      await etcd?.shutdown()
    }
    let cores = ProcessInfo.processInfo.activeProcessorCount
    if !json, list(workers).compactMap({ Int($0) }).contains(where: { $0 > cores }) {
      print(
        "note: with more workers than this machine's \(cores) cores, workers also wait for a core; "
          + "that wait is in the overhead column (compute is the slowest worker's own time)")
    }
  }

  /// Runs every configuration on the problem at `path` and prints its row (`etcd` for the
  /// gRPC mode).
  private func table(path: String, dir: URL, etcd: EtcdTestServer?) async throws {
    if !json {
      print("\(rows)×\(cols) float64, L-BFGS ridge, medians over \(epochs - 2) epochs")
      print(
        "mode      split    workers  epoch ms  compute ms  step ms  overhead ms  ckpt cost %  ckpt write ms  written  parse s  reload s"
      )
    }
    var runs = 0
    let blocks = gradientBlocks.columns
    for mode in list(modes) {
      for partition in list(partition).compactMap(Partition.init(rawValue:)) {
        for n in list(workers).compactMap({ Int($0) }) {
          // One configuration, three runs: plain; a checkpoint every epoch (fresh directory,
          // so workers parse and cache their shards); again on that directory (reloads).
          let ck = dir.appendingPathComponent("ck-\(mode)-\(partition)-\(n)").path
          func once(checkpoints: String?, epochs: Int) async throws -> TrainingBenchmark.Row {
            runs += 1
            guard mode == "grpc", let etcd else {
              return try await TrainingBenchmark.embedded(
                path: path, rows: rows, cols: cols, workers: n, epochs: epochs,
                checkpointDirectory: checkpoints, checkpointEvery: checkpointEvery,
                gradientBlockColumns: blocks, partition: partition)
            }
            return try await withCluster(etcd: etcd.endpoint) { coordinator, transport in
              try await TrainingBenchmark.run(
                mode: "grpc+etcd", path: path, rows: rows, cols: cols, workers: n, epochs: epochs,
                checkpointDirectory: checkpoints, checkpointEvery: checkpointEvery,
                gradientBlockColumns: blocks, partition: partition, coordinator: coordinator,
                transport: transport,
                jobName: "bench-\(getpid())-\(runs)")
            }
          }
          var r = try await once(checkpoints: nil, epochs: epochs)
          let withCheckpoints = try await once(checkpoints: ck, epochs: epochs)
          let reload = try await once(checkpoints: ck, epochs: 3)
          r.setCheckpointCost(from: withCheckpoints)
          if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            var object =
              try JSONSerialization.jsonObject(with: enc.encode(r)) as! [String: Any]
            object["partition"] = partition.rawValue
            object["parse_s"] = withCheckpoints.load_s
            object["reload_s"] = reload.load_s
            let line = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: line, as: UTF8.self))
          } else {
            print(
              r.mode.padding(toLength: 10, withPad: " ", startingAt: 0)
                + partition.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
                + String(
                  format: "%6d %9.2f %11.2f %8.2f %12.2f %12.1f %14.2f %@ %8.3f %9.3f", n,
                  r.epoch_ms, r.compute_ms, r.step_ms, r.overhead_ms,
                  r.checkpoint_cost_percent,
                  r.checkpoint_write_ms,
                  "\(r.checkpoints_written)/\(r.checkpoints_written + r.checkpoints_superseded)"
                    .leftPad(8),
                  withCheckpoints.load_s, reload.load_s))
          }
        }
      }
    }
  }
}
