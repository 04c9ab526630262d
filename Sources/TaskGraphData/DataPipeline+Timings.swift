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

extension DataPipeline {
  /// `apply` for scoring: every row of the file must be scored, so with the `drop` policy
  /// (no imputation fitted) a row with a missing feature value is an error naming the file,
  /// the row's line and the column, instead of a silently skipped row.
  ///
  /// The line is the data row's position counted from the header (exact unless an earlier
  /// field holds a quoted newline).
  public static func applyForScoring<T: BLASScalar>(
    _ pipeline: FittedPipeline, path: String, as: T.Type, limits: DataLimits = .defaults
  ) throws -> PreparedData<T> {
    let table = try read(
      path: path, shard: nil, narrow: T.self == Float.self, limits: limits
    ) { names, sparse in
      try ReadSpec(
        replaying: pipeline, names: names, requireLabel: false, sparse: sparse, path: path)
    }
    if pipeline.missing == .drop {
      let headerLines = (try? InputFormat(path: path)) == .csv ? 1 : 0
      let nw = table.numericNames.count
      let cw = table.categoricalNames.count
      try table.forEachBlock { rows, block in
        for r in rows {
          let i = r - rows.lowerBound
          for s in 0..<nw where block.numeric(i * nw + s).isNaN {
            throw DataError(
              .notANumber,
              "missing value in column '\(table.numericNames[s])', and the model imputes none "
                + "(train with --missing mean or median to score such rows)",
              file: path, line: r + 1 + headerLines)
          }
          for s in 0..<cw where block.codes[i * cw + s] < 0 {
            throw DataError(
              .notANumber,
              "missing value in column '\(table.categoricalNames[s])', and the model imputes none",
              file: path, line: r + 1 + headerLines)
          }
        }
      }
    }
    return try materialise(table, pipeline, requireLabel: false, limits: limits, path: path)
  }
}
