import Foundation
import TaskGraph
import TaskGraphData
import TaskGraphLinalg
import TaskGraphML

/// What the master asks of every worker in one epoch.
enum MasterMessage: Equatable {
  /// Load your shard (if not loaded) and report its size: the first round of a job.
  case load(JobDescription)
  /// Sum loss and gradient over your shard at these parameters.
  case evaluate(JobDescription, SentParameters)
  /// Sum loss and gradient over these rows of your shard (indices from 0, sorted; an SGD
  /// mini-batch's rows that fall in your shard; possibly none).
  case evaluateRows(JobDescription, SentParameters, rows: [Int])
  /// Compute your shard's least-squares statistics (the exact solver's one round).
  case gram(JobDescription)
  /// Score your held-out validation rows with the final parameters (with columns
  /// partitioned: the weights of your columns, and you answer your part of the margins).
  case validate(JobDescription, SentParameters)
  /// Score your training rows with the final parameters, as `validate` does the held-out
  /// ones: the master computes the training metrics of every mode from the predictions.
  case scoreTraining(JobDescription, SentParameters)
  /// Columns partitioned, an evaluation's first half: your part of every row's margin at
  /// the weights of your columns.
  case margins(JobDescription, SentParameters)
  /// Columns partitioned, an evaluation's second half: loss and gradient sums of your
  /// columns at margins `margins + intercept` (the workers' parts of `X w` added up).
  case gradientAt(JobDescription, margins: SharedDoubles, intercept: Double)

  var job: JobDescription {
    switch self {
    case .load(let j), .evaluate(let j, _), .gram(let j), .validate(let j, _), .margins(let j, _),
      .gradientAt(let j, _, _), .evaluateRows(let j, _, _), .scoreTraining(let j, _):
      j
    }
  }

  /// The message's bytes. A `light` evaluation or validation names the job by its
  /// fingerprints instead of carrying its description (the fitted pipeline, megabytes at a
  /// million features): a worker that holds the job already needs no more, and one that
  /// does not answers `needJob` and gets the full message.
  func encoded(_ tag: RoundTag = RoundTag(), light: Bool = false) -> Payload {
    var w = WireWriter()
    tag.write(to: &w)
    switch self {
    case .load(let job):
      w.u8(1)
      job.write(to: &w)
    case .gram(let job):
      w.u8(3)
      job.write(to: &w)
    case .evaluate(let job, let p), .validate(let job, let p), .margins(let job, let p),
      .scoreTraining(let job, let p):
      let kind: UInt8 =
        switch self {
        case .evaluate: 2
        case .validate: 4
        case .scoreTraining: 8
        default: 5
        }
      Self.writeJob(job, kind: kind, light: light, to: &w)
      w.f64(p.intercept)
      w.doubles(p.weights)
    case .evaluateRows(let job, let p, let rows):
      Self.writeJob(job, kind: 7, light: light, to: &w)
      w.f64(p.intercept)
      w.doubles(p.weights)
      w.i64(rows.count)
      for r in rows { w.i64(r) }
    case .gradientAt(let job, let z, let b):
      Self.writeJob(job, kind: 6, light: light, to: &w)
      w.f64(b)
      w.doubles(z)
    }
    return w.payload
  }

  /// The message's kind, then its job in full, or named by its fingerprints if `light`.
  private static func writeJob(
    _ job: JobDescription, kind: UInt8, light: Bool, to w: inout WireWriter
  ) {
    if light {
      w.u8(kind | 0x80)
      w.string(job.dataFingerprint)
      w.string(job.configFingerprint)
    } else {
      w.u8(kind)
      job.write(to: &w)
    }
  }

  /// Whether `message` carries the job's description in full (not a light message naming it):
  /// only those take long to decode (the fitted pipeline is JSON).
  static func carriesJob(_ message: Payload) -> Bool {
    var r = WireReader(message)
    guard (try? RoundTag.read(from: &r)) != nil, let kind = try? r.u8() else { return false }
    return kind & 0x80 == 0
  }

  static func decode(_ message: Payload, known: JobDescription? = nil) throws -> MasterMessage {
    try decodeTagged(message, known: known).message
  }

  /// A light message's job is `known` if the fingerprints match; else this throws
  /// `JobUnknown`.
  static func decodeTagged(_ message: Payload, known: JobDescription? = nil) throws -> (
    tag: RoundTag, message: MasterMessage
  ) {
    var r = WireReader(message)
    let tag = try RoundTag.read(from: &r)
    return (tag, try decodeBody(&r, known: known))
  }

  /// A light message for a job this worker does not hold.
  struct JobUnknown: Error {}

  private static func decodeBody(_ r: inout WireReader, known: JobDescription?) throws
    -> MasterMessage
  {
    let kind = try r.u8()
    let job: JobDescription
    if kind & 0x80 != 0 {
      let data = try r.string()
      let config = try r.string()
      guard let known, known.dataFingerprint == data, known.configFingerprint == config else {
        throw JobUnknown()
      }
      job = known
    } else {
      job = try JobDescription.read(from: &r)
    }
    func parameters() throws -> SentParameters {
      let b = try r.f64()
      return SentParameters(weights: try r.sharedDoubles(), intercept: b)
    }
    switch kind {
    case 1: return .load(job)
    case 3: return .gram(job)
    case 2, 0x82: return .evaluate(job, try parameters())
    case 4, 0x84: return .validate(job, try parameters())
    case 5, 0x85: return .margins(job, try parameters())
    case 8, 0x88: return .scoreTraining(job, try parameters())
    case 7, 0x87:
      let p = try parameters()
      let n = try r.i64()
      guard n >= 0 else {
        throw TrainingError(code: .mismatch, message: "a batch of \(n) rows")
      }
      var rows = [Int]()
      // A count the message cannot hold fails at the first missing index, not here.
      rows.reserveCapacity(min(n, 1 << 16))
      for _ in 0..<n { rows.append(try r.i64()) }
      return .evaluateRows(job, p, rows: rows)
    case 6, 0x86:
      let b = try r.f64()
      return .gradientAt(job, margins: try r.sharedDoubles(), intercept: b)
    default: throw TrainingError(code: .mismatch, message: "unknown master message \(kind)")
    }
  }
}

/// Parameters as a message carries them: the weights are a received message's own bytes
/// on a worker that got them over the network, read in place by the gradient kernel.
struct SentParameters: Equatable, Sendable {
  var weights: SharedDoubles
  var intercept: Double

  init(weights: SharedDoubles, intercept: Double) {
    self.weights = weights
    self.intercept = intercept
  }

  /// `p`, without a copy.
  init(_ p: Parameters) {
    self.init(weights: SharedDoubles(p.weights), intercept: p.intercept)
  }

  /// As ``Parameters``: the weights copied into an array unless they are one already.
  var parameters: Parameters { Parameters(weights: weights.array, intercept: intercept) }
}

/// What a worker answers.
enum WorkerMessage: Equatable {
  /// The shard is loaded: its size and the label statistics for R².
  case loaded(ShardInfo)
  /// The sums over the shard, and the milliseconds the worker spent computing them.
  case sums(GradientSums, computeMilliseconds: Double)
  /// The worker refuses the job (its data or configuration differ from the job's).
  case refused(String)
  /// The shard's least-squares statistics.
  case gram(GramStatistics, computeMilliseconds: Double)
  /// The worker does not hold the job a light message named: send the full message.
  case needJob
  /// The predictions for the shard's validation rows (probabilities for logistic loss), and
  /// their labels, in row order.
  case scored(predictions: [Double], labels: [Double])
  /// One block of columns of the gradient, sent while the worker computes the next: the
  /// gradient has `columns` entries, this block the `values` from `offset` on.
  case gradientBlock(columns: Int, offset: Int, values: SharedDoubles)
  /// The sums of a gradient sent in blocks: everything but the gradient (left empty), which
  /// the `gradientBlock` answers of the same round carry.
  case blockedSums(GradientSums, columns: Int, computeMilliseconds: Double)
  /// Columns partitioned: the worker's part of every row's margin (`X w` over its columns).
  case margins(SharedDoubles, computeMilliseconds: Double)

  func encoded(_ tag: RoundTag = RoundTag()) -> Payload {
    var w = WireWriter()
    tag.write(to: &w)
    switch self {
    case .loaded(let info):
      w.u8(1)
      w.i64(info.rows)
      w.i64(info.cols)
      w.f64(info.labelSum)
      w.f64(info.labelSquares)
      w.f64(info.loadSeconds)
      w.u8(info.fromCache ? 1 : 0)
      w.i64(info.dropped)
      w.i64(info.validationRows)
    case .sums(let s, let ms):
      w.u8(2)
      Self.writeScalars(of: s, ms: ms, to: &w)
      w.doubles(s.gradient)
    case .refused(let why):
      w.u8(3)
      w.string(why)
    case .gram(let g, let ms):
      w.u8(4)
      w.f64(ms)
      w.i64(g.count)
      w.doubles(g.means)
      w.f64(g.labelMean)
      w.doubles(g.gram.storage)
      w.doubles(g.cross)
      w.f64(g.labelSquares)
    case .scored(let p, let y):
      w.u8(5)
      w.doubles(p)
      w.doubles(y)
    case .needJob:
      w.u8(6)
    case .gradientBlock(let columns, let offset, let values):
      w.u8(7)
      w.i64(columns)
      w.i64(offset)
      w.doubles(values)
    case .blockedSums(let s, let columns, let ms):
      w.u8(8)
      w.i64(columns)
      Self.writeScalars(of: s, ms: ms, to: &w)
    case .margins(let z, let ms):
      w.u8(9)
      w.f64(ms)
      w.doubles(z)
    }
    return w.payload
  }

  static func decode(_ message: Payload) throws -> WorkerMessage {
    try decodeTagged(message).message
  }

  static func decodeTagged(_ message: Payload) throws -> (tag: RoundTag, message: WorkerMessage) {
    var r = WireReader(message)
    let tag = try RoundTag.read(from: &r)
    return (tag, try decodeBody(&r))
  }

  /// The sums' compute time, rows, loss and intercept: what `sums` and `blockedSums` share.
  private static func writeScalars(of s: GradientSums, ms: Double, to w: inout WireWriter) {
    w.f64(ms)
    w.i64(s.rows)
    w.f64(s.loss)
    w.f64(s.intercept)
  }

  /// Reads what `writeScalars` wrote: the sums without their gradient, and the compute time.
  private static func readScalars(_ r: inout WireReader) throws -> (GradientSums, Double) {
    let ms = try r.f64()
    let rows = try r.i64()
    let loss = try r.f64()
    let intercept = try r.f64()
    return (GradientSums(loss: loss, gradient: [], intercept: intercept, rows: rows), ms)
  }

  private static func decodeBody(_ r: inout WireReader) throws -> WorkerMessage {
    switch try r.u8() {
    case 1:
      return .loaded(
        ShardInfo(
          rows: try r.i64(), cols: try r.i64(), labelSum: try r.f64(), labelSquares: try r.f64(),
          loadSeconds: try r.f64(), fromCache: try r.u8() == 1, dropped: try r.i64(),
          validationRows: try r.i64()))
    case 2:
      var (sums, ms) = try readScalars(&r)
      sums.gradient = try r.doubles()
      return .sums(sums, computeMilliseconds: ms)
    case 3: return .refused(try r.string())
    case 4:
      let ms = try r.f64()
      let count = try r.i64()
      let means = try r.doubles()
      let labelMean = try r.f64()
      let gram = try r.doubles()
      let d = means.count
      guard gram.count == d * d else {
        throw TrainingError(code: .mismatch, message: "bad Gram matrix of \(gram.count) values")
      }
      return .gram(
        GramStatistics(
          count: count, means: means, labelMean: labelMean,
          gram: Matrix(rows: d, cols: d, storage: gram), cross: try r.doubles(),
          labelSquares: try r.f64()), computeMilliseconds: ms)
    case 5:
      let p = try r.doubles()
      let y = try r.doubles()
      guard p.count == y.count else {
        throw TrainingError(
          code: .mismatch, message: "\(p.count) predictions for \(y.count) labels")
      }
      return .scored(predictions: p, labels: y)
    case 6: return .needJob
    case 7:
      let columns = try r.i64()
      let offset = try r.i64()
      let values = try r.sharedDoubles()
      guard offset >= 0, columns >= 0, values.count <= columns - min(offset, columns) else {
        throw TrainingError(
          code: .mismatch,
          message: "a gradient block of \(values.count) values at \(offset) of \(columns)")
      }
      return .gradientBlock(columns: columns, offset: offset, values: values)
    case 8:
      let columns = try r.i64()
      let (sums, ms) = try readScalars(&r)
      return .blockedSums(sums, columns: columns, computeMilliseconds: ms)
    case 9:
      let ms = try r.f64()
      return .margins(try r.sharedDoubles(), computeMilliseconds: ms)
    case let k: throw TrainingError(code: .mismatch, message: "unknown worker message \(k)")
    }
  }
}

/// Which request of which master an answer belongs to: the master's incarnation (random per
/// master process or task instance) and its round (one evaluation of every shard). A
/// worker echoes the tag; the master takes only answers to its own current round, so
/// answers to a dead master's requests, or to an earlier round, are ignored.
struct RoundTag: Equatable, Sendable {
  var incarnation: UInt64 = 0
  var round: UInt64 = 0

  func write(to w: inout WireWriter) {
    w.u64(incarnation)
    w.u64(round)
  }

  static func read(from r: inout WireReader) throws -> RoundTag {
    RoundTag(incarnation: try r.u64(), round: try r.u64())
  }
}

/// A worker's shard after loading.
struct ShardInfo: Equatable, Sendable {
  var rows: Int
  var cols: Int
  var labelSum: Double
  var labelSquares: Double
  var loadSeconds: Double
  var fromCache: Bool
  /// Rows of the shard dropped for missing values.
  var dropped = 0
  /// Rows of the shard held out for validation (not in `rows`).
  var validationRows = 0
}

/// What every worker must agree on: where the data is, how it is preprocessed, and the
/// fingerprints that detect a worker started against other data or another configuration.
struct JobDescription: Equatable, Sendable {
  var dataPath: String
  var pipeline: FittedPipeline
  var precision: Precision
  var loss: RowLoss
  var threads: Int
  var dataFingerprint: String
  var configFingerprint: String
  /// Fraction of every shard's rows held out for validation.
  var validationSplit: Double = 0
  /// Seed of the held-out rows' choice.
  var seed: UInt64 = 0
  /// How the data is split between the workers.
  var partition: Partition = .rows
  /// `pipeline` as JSON, encoded once: every round's message carries it.
  let pipelineJSON: [UInt8]

  init(
    dataPath: String, pipeline: FittedPipeline, precision: Precision, loss: RowLoss,
    threads: Int, dataFingerprint: String, configFingerprint: String,
    validationSplit: Double = 0, seed: UInt64 = 0, partition: Partition = .rows,
    pipelineJSON: [UInt8]? = nil
  ) {
    self.dataPath = dataPath
    self.pipeline = pipeline
    self.precision = precision
    self.loss = loss
    self.threads = threads
    self.dataFingerprint = dataFingerprint
    self.configFingerprint = configFingerprint
    self.validationSplit = validationSplit
    self.seed = seed
    self.partition = partition
    self.pipelineJSON = pipelineJSON ?? Self.encode(pipeline)
  }

  /// The pipeline as sorted-key JSON: the same bytes in every process, so they can be
  /// hashed (the shard cache's key) without encoding the pipeline again.
  static func encode(_ pipeline: FittedPipeline) -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return Array((try? encoder.encode(pipeline)) ?? Data())
  }

  func write(to w: inout WireWriter) {
    w.string(dataPath)
    w.blob(pipelineJSON)
    w.string(precision.rawValue)
    w.string(loss.rawValue)
    w.i64(threads)
    w.string(dataFingerprint)
    w.string(configFingerprint)
    w.f64(validationSplit)
    w.u64(seed)
    w.string(partition.rawValue)
  }

  static func read(from r: inout WireReader) throws -> JobDescription {
    let path = try r.string()
    let pipelineBytes = try r.blob()
    let pipeline = try JSONDecoder().decode(FittedPipeline.self, from: Data(pipelineBytes))
    guard let precision = Precision(rawValue: try r.string()),
      let loss = RowLoss(rawValue: try r.string())
    else { throw TrainingError(code: .mismatch, message: "bad job description") }
    let threads = try r.i64()
    let data = try r.string()
    let config = try r.string()
    let split = try r.f64()
    let seed = try r.u64()
    guard let partition = Partition(rawValue: try r.string()) else {
      throw TrainingError(code: .mismatch, message: "bad job description: unknown partition")
    }
    return JobDescription(
      dataPath: path, pipeline: pipeline, precision: precision, loss: loss, threads: threads,
      dataFingerprint: data, configFingerprint: config, validationSplit: split, seed: seed,
      partition: partition, pipelineJSON: pipelineBytes)
  }
}

/// Fingerprints of data files and configurations.
public enum Fingerprint {
  /// A fingerprint of a data file: its size and the bytes of its first and last MiB.
  /// Cheap enough to compute on every worker, and different for any two files that differ
  /// in length or near either end.
  public static func ofFile(_ path: String) throws -> String {
    guard let h = FileHandle(forReadingAtPath: path) else {
      throw TrainingError(code: .io, message: "\(path): cannot open the data file")
    }
    defer { try? h.close() }
    let size = try h.seekToEnd()
    var f = FNV1a64()
    withUnsafeBytes(of: size.littleEndian) { f.update($0) }
    try h.seek(toOffset: 0)
    f.update(h.readData(ofLength: 1 << 20))
    if size > 1 << 20 {
      try h.seek(toOffset: size - min(size - (1 << 20), 1 << 20))
      f.update(h.readData(ofLength: 1 << 20))
    }
    return String(f.value, radix: 16)
  }

  /// A fingerprint of anything encodable (sorted-key JSON).
  public static func of<T: Encodable>(_ value: T) -> String {
    let enc = JSONEncoder()
    enc.outputFormatting = [.sortedKeys]
    var f = FNV1a64()
    f.update((try? enc.encode(value)) ?? Data())
    return String(f.value, radix: 16)
  }
}
