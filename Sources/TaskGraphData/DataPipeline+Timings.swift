import Foundation
import TaskGraphLinalg

/// Wall-clock seconds of the two halves of `DataPipeline.fit`.
public struct PipelineTimings: Sendable, Equatable, Codable {
  /// Reading, decompressing and parsing the file into columns.
  public var loadSeconds: Double
  /// Fitting the transforms and materialising the matrix.
  public var preprocessSeconds: Double
}

extension DataPipeline {
  /// `fit(path:options:shard:as:)`, also reporting how long loading and preprocessing took.
  public static func fitTimed<T: BLASScalar>(
    path: String, options: PipelineOptions, shard: Shard? = nil, as: T.Type
  ) throws -> (data: PreparedData<T>, timings: PipelineTimings) {
    let t0 = Date()
    let table = try read(
      path: path, shard: shard, narrow: T.self == Float.self, limits: options.limits
    ) { names, _ in
      try ReadSpec(fitting: options, names: names, path: path)
    }
    let t1 = Date()
    let pipeline = try fitTransforms(table, options: options, path: path)
    let data: PreparedData<T> = try materialise(
      table, pipeline, requireLabel: true, limits: options.limits, path: path)
    let t2 = Date()
    return (
      data,
      PipelineTimings(
        loadSeconds: t1.timeIntervalSince(t0), preprocessSeconds: t2.timeIntervalSince(t1))
    )
  }
}

/// Data prepared for scoring, and the rows that cannot be scored.
public struct ScoringData<T: BLASScalar> {
  /// The rows that can be scored, in the file's order.
  public var prepared: PreparedData<T>
  /// The data rows (from 0, in the file's order) left out because a feature value is
  /// missing and the model imputes none, with their labels (NaN where absent).
  public var unscoredRows: [Int]
  public var unscoredLabels: [Double]

  /// Every data row of the file: scored and unscored.
  public var rowCount: Int { prepared.x.rows + unscoredRows.count }
}

extension DataPipeline {
  /// `apply` for scoring. With the `drop` policy (no imputation fitted) a row with a
  /// missing feature value cannot be scored: as `evaluate` does, it is left out of the
  /// matrix, and it is listed in `unscoredRows` so that a caller writing one line per
  /// input row can give it an empty prediction (R's `na.exclude`). Rows whose label alone
  /// is missing are scored.
  public static func applyForScoring<T: BLASScalar>(
    _ pipeline: FittedPipeline, path: String, as: T.Type, limits: DataLimits = .defaults
  ) throws -> ScoringData<T> {
    let table = try read(
      path: path, shard: nil, narrow: T.self == Float.self, limits: limits
    ) { names, sparse in
      try ReadSpec(
        replaying: pipeline, names: names, requireLabel: false, sparse: sparse, path: path)
    }
    // The rows `materialise` leaves out, by the same test.
    let keep = keptRows(
      table, numericSlots: Array(table.numericNames.indices),
      categoricalSlots: Array(table.categoricalNames.indices), policy: pipeline.missing,
      requireLabel: false)
    let rows = keep.indices.filter { !keep[$0] }
    // Read before `materialise` releases the table's rows.
    let labels = rows.map { table.label($0) }
    let prepared: PreparedData<T> = try materialise(
      table, pipeline, requireLabel: false, limits: limits, path: path)
    return ScoringData(prepared: prepared, unscoredRows: rows, unscoredLabels: labels)
  }
}
