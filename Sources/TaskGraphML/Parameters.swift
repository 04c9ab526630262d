import TaskGraphLinalg

/// The parameters `(w, b)` of a linear model.
public struct Parameters: Sendable, Codable, Hashable {
  /// The coefficients `w`, one per feature.
  public var weights: [Double]
  /// The intercept `b`.
  public var intercept: Double

  /// Parameters with the given coefficients and intercept.
  public init(weights: [Double], intercept: Double = 0) {
    self.weights = weights
    self.intercept = intercept
  }

  /// All-zero parameters for `features` features.
  public static func zeros(features: Int) -> Parameters {
    Parameters(weights: [Double](repeating: 0, count: features), intercept: 0)
  }
}

/// The rows one gradient evaluation sums over.
public enum Batch: Sendable, Codable, Hashable {
  /// Every row of the source.
  case all
  /// A contiguous range of rows.
  case rows(Range<Int>)
  /// An explicit set of row indices (repeats allowed).
  case indices([Int])
}

/// One request to a gradient source: the point and the rows to evaluate.
public struct EvaluationRequest: Sendable, Hashable {
  /// Where to evaluate.
  public var parameters: Parameters
  /// Which rows to sum over.
  public var batch: Batch

  /// A request at `parameters` over `batch`.
  public init(parameters: Parameters, batch: Batch = .all) {
    self.parameters = parameters
    self.batch = batch
  }
}

/// Something that sums the loss and its gradient over rows of data at given parameters.
///
/// The optimizer only sees `GradientSums` (sums, not means, of the data term — the
/// regulariser is added by the optimizer), so the sums may come from one local matrix
/// (`LocalGradientSource`) or from a parameter server that adds up workers' shards.
public protocol GradientSource {
  /// The number of rows `n` the source holds (the size of `.all`).
  var rowCount: Int { get }
  /// The number of features `d`.
  var featureCount: Int { get }
  /// Sums of the loss, `Σ rᵢxᵢ` and `Σ rᵢ` over `request.batch` at `request.parameters`.
  func gradientSums(_ request: EvaluationRequest) throws -> GradientSums
}

/// A gradient source over a local dense matrix, evaluated by `FusedGradient`.
public struct LocalGradientSource<T: BLASScalar>: GradientSource, Sendable {
  /// The features, `n × d`.
  public let x: Matrix<T>
  /// The labels, `n` of them (0/1 for logistic loss).
  public let labels: [Double]
  /// The per-row loss.
  public let loss: RowLoss
  /// Threads of the fused kernel.
  public let threads: Int

  /// A source over `x` and `labels`; traps if their lengths differ.
  public init(x: Matrix<T>, labels: [Double], loss: RowLoss, threads: Int = 1) {
    precondition(labels.count == x.rows, "labels: \(labels.count), rows: \(x.rows)")
    precondition(threads >= 1, "threads must be at least 1")
    self.x = x
    self.labels = labels
    self.loss = loss
    self.threads = threads
  }

  /// The rows of `x`.
  public var rowCount: Int { x.rows }
  /// The columns of `x`.
  public var featureCount: Int { x.cols }

  /// Sums over the batch: a range is summed in place; an index set gathers its rows first
  /// (O(|batch|·d) extra memory).
  public func gradientSums(_ request: EvaluationRequest) -> GradientSums {
    let p = request.parameters
    switch request.batch {
    case .all:
      return FusedGradient.compute(
        x: x, y: labels, weights: p.weights, intercept: p.intercept, loss: loss, threads: threads)
    case .rows(let range):
      return FusedGradient.compute(
        x: x, y: labels, weights: p.weights, intercept: p.intercept, loss: loss, rows: range,
        threads: threads)
    case .indices(let indices):
      let sub = x.rows(at: indices)
      let y = indices.map { labels[$0] }
      return FusedGradient.compute(
        x: sub, y: y, weights: p.weights, intercept: p.intercept, loss: loss, threads: threads)
    }
  }
}
