import ArgumentParser
import Foundation
import TaskGraphData
import TaskGraphML
import TaskGraphTraining

struct PredictCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "predict",
    abstract: "Score a data file with a model; write one prediction per row as CSV.",
    discussion: """
      The output has a header and one row per scored input row: the row's label when the \
      data has the label column, then the prediction (the probability for logistic). \
      Without --output the CSV goes to standard output.
      """
  )

  @Option(help: "The model file (JSON) written by train.") var model: String
  @OptionGroup var input: DataOptions
  @Option(help: "Where to write the predictions (CSV).") var output: String?

  func run() async throws {
    try await CLIErrors.guarding {
      if let output {
        try OutputPaths.check(
          inputs: [("--model", model), ("--data", input.data)], outputs: [("--output", output)])
      }
      let file = try ModelFile.read(from: model)
      let data = try DataPipeline.applyForScoring(
        file.preprocessing, path: input.data, as: Double.self)
      let p = file.linearModel.predict(data.x)
      var csv = data.y != nil ? "\(file.label),prediction\n" : "prediction\n"
      csv.reserveCapacity(p.count * 24)
      for i in p.indices {
        if let y = data.y {
          csv += "\(format(y[i])),\(format(p[i]))\n"
        } else {
          csv += "\(format(p[i]))\n"
        }
      }
      if let output {
        try AtomicFile.write(Data(csv.utf8), to: output)
      } else {
        FileHandle.standardOutput.write(Data(csv.utf8))
      }
    }
  }
}

func format(_ v: Double) -> String {
  v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : "\(v)"
}

struct EvaluateCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "evaluate",
    abstract: "Print a model's metrics on a labelled data file."
  )

  @Option(help: "The model file (JSON) written by train.") var model: String
  @OptionGroup var input: DataOptions
  @Flag(help: "Print the metrics as one JSON object.") var json = false

  func run() async throws {
    try await CLIErrors.guarding {
      let file = try ModelFile.read(from: model)
      let data = try DataPipeline.apply(
        file.preprocessing, path: input.data, requireLabel: true, as: Double.self)
      guard let y = data.y else {
        throw TrainingError(
          code: .mismatch, message: "\(input.data): label column '\(file.label)' not found")
      }
      let m = LocalTraining.metrics(file.linearModel, data.x, y)
      if json {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        var out = m
        out["rows"] = Double(data.x.rows)
        out["rows_dropped"] = Double(data.droppedRows)
        Swift.print(String(decoding: try enc.encode(out), as: UTF8.self))
        return
      }
      Swift.print("metrics on \(input.data) (\(data.x.rows) rows, \(data.droppedRows) dropped)")
      for (k, v) in m.sorted(by: { $0.key < $1.key }) {
        Swift.print(
          "  " + k.padding(toLength: 10, withPad: " ", startingAt: 0) + String(format: "%.6g", v))
      }
    }
  }
}
