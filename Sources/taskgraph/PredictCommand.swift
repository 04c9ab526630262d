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
      The output has a header and one line per input row, in order: the row's label when \
      the data has the label column, then the prediction (the probability for logistic). \
      A row with a missing feature value that the model does not impute (it was trained \
      with --missing drop) gets an empty prediction, as evaluate leaves it out; a note on \
      standard error counts them. Without --output the CSV goes to standard output.
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
      let scoring = try DataPipeline.applyForScoring(
        file.preprocessing, path: input.data, as: Double.self)
      let data = scoring.prepared
      guard data.droppedRows == scoring.unscoredRows.count else {
        throw TrainingError(
          code: .mismatch,
          message:
            "\(input.data): \(data.droppedRows) rows were left out, \(scoring.unscoredRows.count) expected"
        )
      }
      let p = file.linearModel.predict(data.x)
      var csv = data.y != nil ? "\(file.label),prediction\n" : "prediction\n"
      csv.reserveCapacity(scoring.rowCount * 24)
      // One line per data row, in the file's order; an unscored row has no prediction.
      var next = 0
      var skipped = 0
      for row in 0..<scoring.rowCount {
        let label: Double
        let prediction: String
        if skipped < scoring.unscoredRows.count && scoring.unscoredRows[skipped] == row {
          label = scoring.unscoredLabels[skipped]
          prediction = ""
          skipped += 1
        } else {
          label = data.y?[next] ?? .nan
          prediction = format(p[next])
          next += 1
        }
        csv += data.y != nil ? "\(format(label)),\(prediction)\n" : "\(prediction)\n"
      }
      if skipped > 0 {
        FileHandle.standardError.write(
          Data(
            "note: \(skipped) of \(scoring.rowCount) rows have a missing feature value and the model imputes none: their prediction is empty (evaluate leaves them out)\n"
              .utf8))
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
