// An example of a data pipeline of one's own: read a file through the built-in source,
// add a derived feature with a user-written transformer, drop rows with a user-written
// filter, cache the result in a DatumStore, and train a ridge regression on it.
//
//   swift run custom-pipeline datasets/diabetes.csv
import Foundation
import TaskGraphData
import TaskGraphLinalg
import TaskGraphML

/// A transformer of one's own: appends the product of two features (an interaction term).
struct InteractionFeature: DatumTransformer {
  let first: Int
  let second: Int
  func transform(_ datum: Datum) throws -> Datum? {
    var d = datum
    d.features.append(datum.features[first] * datum.features[second])
    return d
  }
}

let path = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "datasets/diabetes.csv"
do {
  // 1. The built-in source: CSV with a named label, standardised features.
  var options = PipelineOptions(label: "progression")
  options.standardize = true
  let pipeline = try DataPipeline.fitPipeline(path: path, options: options)
  let source = try DatumIteratorBuilder.iterator(path: path, pipeline: pipeline)

  // 2. Our own steps: an interaction of bmi (feature 2) and s5 (feature 8), and a filter.
  let bmi = pipeline.featureNames.firstIndex(of: "bmi") ?? 2
  let s5 = pipeline.featureNames.firstIndex(of: "s5") ?? 8
  let withInteraction = source.transformed(InteractionFeature(first: bmi, second: s5))
  let labelled = withInteraction.transformed(
    ClosureDatumTransformer { $0.label == nil ? nil : $0 })

  // 3. Cache in memory as a dense matrix, and train.
  let store = try DatumStore<Double>(labelled)
  let config = TrainingConfiguration(
    kind: .ridge, regularization: Regularization(l2: 1e-3), solver: .lbfgs)
  let result = try Trainer.fit(x: store.x, y: store.y, configuration: config)
  let predictions = result.model.predict(store.x)
  print("rows \(store.count), features \(store.x.cols) (with bmi×s5)")
  print("solver \(result.summary.solver.rawValue), iterations \(result.summary.iterations)")
  print(String(format: "r2 %.4f", Metrics.r2(predictions, store.y)))
  print(String(format: "interaction coefficient %.4f", result.model.coefficients.last ?? .nan))
} catch {
  FileHandle.standardError.write(Data("error: \(error)\n".utf8))
  exit(1)
}
