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
    let table = try read(path: path, shard: shard) { names in
      try ReadSpec(fitting: options, names: names, path: path)
    }
    let t1 = Date()
    let pipeline = try fitTransforms(table, options: options, path: path)
    let data: PreparedData<T> = materialise(table, pipeline, requireLabel: true)
    let t2 = Date()
    return (
      data,
      PipelineTimings(
        loadSeconds: t1.timeIntervalSince(t0), preprocessSeconds: t2.timeIntervalSince(t1))
    )
  }
}
