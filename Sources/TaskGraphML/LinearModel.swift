import Foundation
import TaskGraphLinalg

/// A trained linear model: `z = x·w + b`, with `σ(z)` as the probability for logistic.
public struct LinearModel: Sendable, Codable, Hashable {
  /// The family of model; decides the loss and the meaning of `predict`.
  public enum Kind: String, Sendable, Codable, CaseIterable {
    /// Ordinary least squares.
    case linear
    /// Least squares with an L2 penalty.
    case ridge
    /// Least squares with an L1 penalty.
    case lasso
    /// Least squares with L1 and L2 penalties.
    case elasticNet
    /// Binary logistic regression for labels in {0, 1}.
    case logistic

    /// The per-row loss of this kind.
    public var loss: RowLoss { self == .logistic ? .logistic : .squared }
  }

  /// The model family.
  public var kind: Kind
  /// The coefficients `w`, one per feature.
  public var coefficients: [Double]
  /// The intercept `b`.
  public var intercept: Double

  /// A model with the given parameters.
  public init(kind: Kind, coefficients: [Double], intercept: Double) {
    self.kind = kind
    self.coefficients = coefficients
    self.intercept = intercept
  }

  /// A model of `kind` with `parameters`.
  public init(kind: Kind, parameters: Parameters) {
    self.init(kind: kind, coefficients: parameters.weights, intercept: parameters.intercept)
  }

  /// The parameters `(w, b)`.
  public var parameters: Parameters { Parameters(weights: coefficients, intercept: intercept) }

  /// The margins `X w + b`, one per row: one BLAS `gemv` in `T`. O(n·d).
  public func margins<T: BLASScalar>(_ x: Matrix<T>) -> [Double] {
    precondition(
      x.cols == coefficients.count, "matrix has \(x.cols) columns, model \(coefficients.count)")
    if x.cols == 0 { return [Double](repeating: intercept, count: x.rows) }
    let z = BLAS.gemv(x, coefficients.map { T($0) })
    return z.map { Double($0) + intercept }
  }

  /// Predictions: the margins for regression, probabilities `σ(z)` for logistic.
  public func predict<T: BLASScalar>(_ x: Matrix<T>) -> [Double] {
    response(margins: margins(x))
  }

  /// Predictions from margins `z` (intercept included): `z` itself for a linear model, the
  /// probabilities `σ(z)` for a logistic one.
  public func response(margins z: [Double]) -> [Double] {
    guard kind == .logistic else { return z }
    return z.map { v in v >= 0 ? 1 / (1 + exp(-v)) : exp(v) / (1 + exp(v)) }
  }

  /// Class labels (0 or 1) of a logistic model: 1 where the probability is ≥ `threshold`.
  public func predictLabels<T: BLASScalar>(_ x: Matrix<T>, threshold: Double = 0.5) -> [Double] {
    precondition(kind == .logistic, "labels are defined for logistic models only")
    return predict(x).map { $0 >= threshold ? 1 : 0 }
  }

  /// Writes the model as JSON to `url` atomically.
  ///
  /// - Throws: `MLError.Code.fileAccess` if the file cannot be written.
  public func write(to url: URL) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    do {
      try encoder.encode(self).write(to: url, options: .atomic)
    } catch {
      throw MLError(code: .fileAccess, message: "cannot write model to \(url.path)", cause: error)
    }
  }

  /// Reads a model written by `write(to:)`.
  ///
  /// - Throws: `MLError.Code.fileAccess` if the file cannot be read,
  ///   `MLError.Code.invalidModelFile` if it is not a model.
  public init(contentsOf url: URL) throws {
    let data: Data
    do {
      data = try Data(contentsOf: url)
    } catch {
      throw MLError(code: .fileAccess, message: "cannot read model \(url.path)", cause: error)
    }
    do {
      self = try JSONDecoder().decode(LinearModel.self, from: data)
    } catch {
      throw MLError(
        code: .invalidModelFile, message: "\(url.path) is not a linear model file", cause: error)
    }
  }
}
