import Foundation
import TaskGraphData
import TaskGraphML

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
    training: TrainingReport
  ) {
    self.format = Self.formatName
    self.formatVersion = Self.currentFormatVersion
    self.model = model.kind
    self.l1 = regularization.l1
    self.l2 = regularization.l2
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

  /// Reads a model file, checking its format and version first.
  public static func read(from path: String) throws -> ModelFile {
    let data: Data
    do {
      data = try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
      throw TrainingError(code: .io, message: "\(path): cannot read the model file", cause: error)
    }
    return try decode(data, path: path)
  }

  /// Decodes a model file's bytes; `path` names it in errors.
  public static func decode(_ data: Data, path: String) throws -> ModelFile {
    struct Header: Decodable {
      var format: String?
      var formatVersion: Int?
    }
    let dec = JSONDecoder()
    dec.keyDecodingStrategy = .convertFromSnakeCase
    dec.nonConformingFloatDecodingStrategy = .convertFromString(
      positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    guard let header = try? dec.decode(Header.self, from: data) else {
      throw TrainingError(code: .badModelFile, message: "\(path): not a JSON model file")
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
    do {
      return try dec.decode(ModelFile.self, from: data)
    } catch {
      throw TrainingError(
        code: .badModelFile, message: "\(path): malformed model file: \(describe(error))",
        cause: error)
    }
  }

  private static func describe(_ error: any Error) -> String {
    switch error {
    case DecodingError.keyNotFound(let key, _): "missing field '\(key.stringValue)'"
    case DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx),
      DecodingError.dataCorrupted(let ctx):
      "bad value at '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))'"
    default: "\(error)"
    }
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
}
