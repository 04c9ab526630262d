import Foundation
import TaskGraphData
import TaskGraphML

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// The units a penalty applies to.
public enum PenaltyUnits: String, Codable, Sendable {
  /// The coefficients of the features as they are in the input.
  case original
  /// The coefficients of the standardised features (mean 0, standard deviation 1).
  case standardized
}

/// The JSON file a training run writes and `predict` / `evaluate` / warm starts read.
///
/// It holds everything needed to score new rows: the fitted preprocessing (which is
/// replayed on new data), the coefficients in the units the model was trained in
/// (`standardizedCoefficients`, applied to the pipeline's output) and in the original
/// units of the features (`coefficients`), and a summary of the run.
public struct ModelFile: Codable, Sendable, Equatable {
  /// The format version this build writes and reads.
  public static let currentFormatVersion = 1
  /// The value of `format`, identifying the file type.
  public static let formatName = "taskgraph-model"

  /// Always `taskgraph-model`.
  public var format: String
  /// The file's format version.
  public var formatVersion: Int
  /// The model family: linear, ridge, lasso, elasticNet or logistic.
  public var model: LinearModel.Kind
  /// The L1 weight of the objective.
  public var l1: Double
  /// The L2 weight of the objective.
  public var l2: Double
  /// The units `l1` and `l2` penalise the coefficients in: the features' original units
  /// (a run without `--standardize`, whatever the preprocessing its solver used) or the
  /// standardised ones. Absent in files written before it existed: standardised when the
  /// preprocessing standardises, original otherwise.
  public var penaltyUnits: PenaltyUnits?
  /// The label column.
  public var label: String
  /// Names of the model's input features (after one-hot encoding), in coefficient order.
  public var featureNames: [String]
  /// Coefficients in the features' original units (before standardisation).
  public var coefficients: [Double]
  /// Intercept in original units.
  public var intercept: Double
  /// Coefficients as trained, applied to the preprocessing's output.
  public var standardizedCoefficients: [Double]
  /// Intercept as trained.
  public var standardizedIntercept: Double
  /// The fitted preprocessing, replayed on new data.
  public var preprocessing: FittedPipeline
  /// How the model was trained.
  public var training: TrainingReport

  /// A model file for `model` trained through `pipeline`.
  public init(
    model: LinearModel, regularization: Regularization, pipeline: FittedPipeline,
    training: TrainingReport, penaltyUnits: PenaltyUnits? = nil
  ) {
    self.format = Self.formatName
    self.formatVersion = Self.currentFormatVersion
    self.model = model.kind
    self.l1 = regularization.l1
    self.l2 = regularization.l2
    self.penaltyUnits =
      penaltyUnits ?? (pipeline.means == nil ? .original : .standardized)
    self.label = pipeline.label
    self.featureNames = pipeline.featureNames
    self.standardizedCoefficients = model.coefficients
    self.standardizedIntercept = model.intercept
    // With standardisation x' = (x − μ) / σ: w = w' / σ and b = b' − Σ w' μ / σ.
    if let means = pipeline.means, let scales = pipeline.scales {
      var b = model.intercept
      var w = model.coefficients
      for j in w.indices {
        w[j] = model.coefficients[j] / scales[j]
        b -= model.coefficients[j] * means[j] / scales[j]
      }
      self.coefficients = w
      self.intercept = b
    } else {
      self.coefficients = model.coefficients
      self.intercept = model.intercept
    }
    self.preprocessing = pipeline
    self.training = training
  }

  /// The model as trained, to apply to the preprocessing's output.
  public var linearModel: LinearModel {
    LinearModel(
      kind: model, coefficients: standardizedCoefficients, intercept: standardizedIntercept)
  }

  /// The encoded JSON (sorted keys, snake_case).
  public func encoded() throws -> Data {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    enc.keyEncodingStrategy = .convertToSnakeCase
    enc.nonConformingFloatEncodingStrategy = .convertToString(
      positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return try enc.encode(self)
  }

  /// Writes the file atomically (temporary name, fsync, rename).
  public func write(to path: String) throws {
    try AtomicFile.write(try encoded(), to: path)
  }

  /// Reads a model file and checks it whole (see `decode(_:path:)`).
  ///
  /// - Throws: `TrainingError` with code `io` if the file cannot be read (or is not a regular
  ///   file, or is larger than physical memory), `unsupportedVersion` for another format
  ///   version, and `badModelFile` for anything else; the message names the file and, in the
  ///   project's words, the place in it.
  public static func read(from path: String) throws -> ModelFile {
    try decode(readBytes(path), path: path)
  }

  /// The bytes of the file at `path`, refusing a directory, FIFO or device (a FIFO would block
  /// the read forever) and a file larger than `DataLimits.physicalMemory`.
  private static func readBytes(_ path: String) throws -> Data {
    func failure(_ what: String, _ e: Int32) -> TrainingError {
      let reason = String(cString: strerror(e))
      return TrainingError(code: .io, message: "\(path): cannot \(what) the model file: \(reason)")
    }
    let fd: Int32
    let size: Int
    do {
      (fd, size) = try RegularFile.open(path)
    } catch .cannotOpen(let e) {
      throw failure("open", e)
    } catch .cannotStat(let e) {
      throw failure("stat", e)
    } catch .notRegular(let mode) {
      throw TrainingError(
        code: .io,
        message:
          "\(path): not a regular file (\(mode == S_IFDIR ? "a directory" : "a FIFO, device or socket")); expected a model file"
      )
    }
    defer { close(fd) }
    guard size <= DataLimits.physicalMemory else {
      throw TrainingError(
        code: .io, message: "\(path): the model file holds \(size) bytes, more than memory")
    }
    do {
      return Data(try RegularFile.read(fd, offset: 0, count: size))
    } catch {
      throw failure("read", error.errno)
    }
  }

  /// Decodes a model file's bytes and checks it whole; `path` names it in errors.
  ///
  /// Beyond the JSON's shape, the model must be usable as it stands: the format name and
  /// version this build reads; as many coefficients (original and standardised) as feature
  /// names, the same names as the preprocessing gives, and the same label; every
  /// coefficient, intercept and regularisation weight finite (the weights also non-negative);
  /// and a consistent preprocessing (see `FittedPipeline.problem()`: standardisation scales
  /// finite and positive, means and fills finite, one-hot vocabularies non-empty). Such a file
  /// would otherwise trap in `predict` / `evaluate` or score rows wrongly. Every problem is one
  /// `TrainingError` whose message names the file and the place, e.g. `model.json: not a valid
  /// model file: expected a number at coefficients[3]`; decoding errors are put into those
  /// words rather than shown as Foundation's.
  public static func decode(_ data: Data, path: String) throws -> ModelFile {
    struct Header: Decodable {
      var format: String?
      var formatVersion: Int?
    }
    let dec = JSONDecoder()
    dec.keyDecodingStrategy = .convertFromSnakeCase
    dec.nonConformingFloatDecodingStrategy = .convertFromString(
      positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    func invalid(_ reason: String, cause: (any Error)? = nil) -> TrainingError {
      TrainingError(
        code: .badModelFile, message: "\(path): not a valid model file: \(reason)", cause: cause)
    }
    let header: Header
    do {
      header = try dec.decode(Header.self, from: data)
    } catch {
      throw invalid(describe(error, data), cause: error)
    }
    guard header.format == formatName else {
      throw TrainingError(
        code: .badModelFile,
        message: "\(path): not a TaskGraph model file (expected \"format\": \"\(formatName)\")")
    }
    guard header.formatVersion == currentFormatVersion else {
      let v = header.formatVersion.map(String.init) ?? "missing"
      throw TrainingError(
        code: .unsupportedVersion,
        message:
          "\(path): model format version \(v) is not supported (this build reads version \(currentFormatVersion))"
      )
    }
    let file: ModelFile
    do {
      file = try dec.decode(ModelFile.self, from: data)
    } catch {
      throw invalid(describe(error, data), cause: error)
    }
    if let problem = file.problem() { throw invalid(problem) }
    return file
  }

  /// Refuses the result of a training run that a model file could not hold or that cannot be
  /// trusted: a coefficient, the intercept or the final objective that is not finite. Values
  /// in the data too large for squared or summed terms get there without an error of their
  /// own (a square overflows to infinity, then infinity − infinity is NaN); the run must fail
  /// rather than write such a model and report it with exit status 0.
  ///
  /// - Throws: `TrainingError` with code `solverFailed`, naming the first such value.
  public func checkUsable() throws {
    var problem = problem()
    if problem == nil, let objective = training.objectives.last, !objective.isFinite {
      problem = "the objective is \(objective)"
    }
    guard let problem else { return }
    throw TrainingError(
      code: .solverFailed,
      message: "training gave no usable model (\(problem)): the data hold values too large "
        + "for the computation; rescale the label or the columns")
  }

  /// The first inconsistency of a decoded model (see `decode(_:path:)`), or nil.
  private func problem() -> String? {
    let n = featureNames.count
    for (name, count) in [
      ("coefficients", coefficients.count),
      ("standardized_coefficients", standardizedCoefficients.count),
      ("preprocessing.feature_names", preprocessing.featureNames.count),
    ] where count != n {
      return "\(name) has \(count) entries but feature_names has \(n)"
    }
    if let k = featureNames.indices.first(where: {
      featureNames[$0] != preprocessing.featureNames[$0]
    }) {
      return "feature_names[\(k)] is '\(featureNames[k])' but "
        + "preprocessing.feature_names[\(k)] is '\(preprocessing.featureNames[k])'"
    }
    if label != preprocessing.label {
      return "label is '\(label)' but preprocessing.label is '\(preprocessing.label)'"
    }
    for (name, values) in [
      ("coefficients", coefficients), ("standardized_coefficients", standardizedCoefficients),
    ] {
      if let k = values.firstIndex(where: { !$0.isFinite }) {
        return "\(name)[\(k)] is \(values[k]): expected a finite number"
      }
    }
    for (name, value) in [
      ("intercept", intercept), ("standardized_intercept", standardizedIntercept),
    ] where !value.isFinite {
      return "\(name) is \(value): expected a finite number"
    }
    for (name, value) in [("l1", l1), ("l2", l2)] where !(value.isFinite && value >= 0) {
      return "\(name) is \(value): expected a finite number ≥ 0"
    }
    if let problem = preprocessing.problem() { return "preprocessing.\(problem)" }
    return nil
  }

  /// A decoding error in the project's words: what was expected, and where, as the file's
  /// JSON spells it (`preprocessing.columns[2].fill`).
  private static func describe(_ error: any Error, _ data: Data) -> String {
    func place(_ path: [any CodingKey], _ last: (any CodingKey)? = nil) -> String {
      var text = ""
      for key in path + (last.map { [$0] } ?? []) {
        if let index = key.intValue {
          text += "[\(index)]"
        } else {
          text += (text.isEmpty ? "" : ".") + snakeCase(key.stringValue)
        }
      }
      return text.isEmpty ? "the top level" : text
    }
    func expected(_ type: Any.Type) -> String {
      switch type {
      case is any BinaryFloatingPoint.Type, is any BinaryInteger.Type: return "a number"
      case is String.Type: return "a string"
      case is Bool.Type: return "true or false"
      default:
        let name = String(describing: type)
        if name.hasPrefix("Array") || name.hasPrefix("[") && !name.contains(":") {
          return "an array"
        }
        return "an object"
      }
    }
    switch error {
    case DecodingError.keyNotFound(let key, let context):
      let parent = context.codingPath.isEmpty ? "" : " in \(place(context.codingPath))"
      return "missing field '\(snakeCase(key.stringValue))'\(parent)"
    case DecodingError.typeMismatch(let type, let context):
      return "expected \(expected(type)) at \(place(context.codingPath))"
    case DecodingError.valueNotFound(let type, let context):
      return "expected \(expected(type)) at \(place(context.codingPath)), found null"
    case DecodingError.dataCorrupted(let context):
      if context.codingPath.isEmpty {
        if data.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
          return "the file is empty"
        }
        return "not valid JSON" + jsonPosition(data)
      }
      return "unexpected value at \(place(context.codingPath))"
    default:
      return "cannot be decoded"
    }
  }

  /// ` (near line 3, column 7)` for the JSON syntax error in `data`, or nothing if the
  /// place is not known. `JSONDecoder` does not say where; `JSONSerialization` gives a byte
  /// offset (`around character 15`), which is turned into a 1-based line and column.
  private static func jsonPosition(_ data: Data) -> String {
    let text: String
    do {
      _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
      return ""
    } catch {
      text = ((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String) ?? ""
    }
    guard let marker = text.range(of: "character "),
      let offset = Int(text[marker.upperBound...].prefix(while: \.isNumber)),
      offset >= 0, offset <= data.count
    else { return "" }
    let before = data.prefix(offset)
    let line = before.reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
    let column = offset - (before.lastIndex(of: 0x0A).map { $0 - data.startIndex + 1 } ?? 0) + 1
    return " (near line \(line), column \(column))"
  }

  /// `standardizedCoefficients` → `standardized_coefficients`, as the file spells keys.
  private static func snakeCase(_ key: String) -> String {
    var out = ""
    for c in key {
      if c.isUppercase {
        if !out.isEmpty { out += "_" }
        out += c.lowercased()
      } else {
        out.append(c)
      }
    }
    return out
  }
}

/// A summary of a training run, stored in the model file and printed by the CLI.
public struct TrainingReport: Codable, Sendable, Equatable {
  /// The solver that ran.
  public var solver: String
  /// Iterations run (0 for exact solvers).
  public var iterations: Int
  /// Why the solver stopped.
  public var stopReason: String
  /// The objective before the first iteration and after each one.
  public var objectives: [Double]
  /// The final objective.
  public var objective: Double
  /// Seconds reading and parsing the data.
  public var loadSeconds: Double
  /// Seconds fitting and applying the preprocessing.
  public var preprocessSeconds: Double
  /// Seconds in the solver.
  public var fitSeconds: Double
  /// Milliseconds per iteration (fit seconds / max(1, iterations)).
  public var msPerIteration: Double
  /// Rows read from the input, before dropping.
  public var rowsRead: Int
  /// Rows dropped for missing values.
  public var rowsDropped: Int
  /// Training rows.
  public var trainRows: Int
  /// Validation rows.
  public var validationRows: Int
  /// Metrics on the training rows.
  public var trainMetrics: [String: Double]
  /// Metrics on the validation rows (empty without a validation split).
  public var validationMetrics: [String: Double]
  /// Element type of the matrix: float64 or float32.
  public var precision: String
  /// Threads used by the gradient kernel.
  public var threads: Int
  /// Worker tasks (1 on a single machine without `--workers`).
  public var workers: Int
  /// Distributed runs with checkpoints: checkpoints written, those superseded by a newer
  /// one before their turn, and the median milliseconds of one write (in the background).
  public var checkpointsWritten: Int? = nil
  public var checkpointsSuperseded: Int? = nil
  public var checkpointWriteMilliseconds: Double? = nil
  /// Features the exact solver found aliased (collinear with earlier ones and the
  /// intercept): their coefficient is 0. Nil when none were.
  public var aliasedFeatures: [String]? = nil
  /// False when an iterative solver stopped on its iteration or time limit before meeting
  /// its tolerance (the model is not the optimum), or its line search failed; nil in files
  /// written before this field existed.
  public var converged: Bool? = nil
  /// Warnings the run printed (not converged, aliased features).
  public var warnings: [String]? = nil
}
