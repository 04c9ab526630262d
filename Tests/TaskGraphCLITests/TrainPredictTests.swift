import Foundation
import XCTest

final class TrainPredictTests: XCTestCase {
  func testTrainPredictEvaluateOnDiabetes() throws {
    let dir = try TempDir()
    let model = dir.path("model.json")
    let summary = dir.path("summary.json")
    let r = try CLI.run([
      "train", "--data", CLI.dataset("diabetes.csv"), "--label", "progression",
      "--output", model, "--summary-json", summary,
    ])
    XCTAssertEqual(r.status, 0, r.stderr)
    XCTAssertTrue(r.stdout.contains("r2"), r.stdout)
    let s =
      try CLI.json(summary)
    for key in ["load_seconds", "preprocess_seconds", "fit_seconds", "iterations", "objective"] {
      XCTAssertNotNil(s[key], "summary lacks \(key)")
    }
    let m =
      try CLI.json(model)
    XCTAssertEqual(m["format_version"] as? Int, 1)
    XCTAssertEqual((m["coefficients"] as? [Double])?.count, 10)
    // Published OLS fit of the raw diabetes data (scikit-learn LinearRegression):
    // intercept −334.56714, bmi coefficient 5.60296, to 1e-6 relative.
    XCTAssertEqual(m["intercept"] as! Double, -334.56714, accuracy: 1e-6 * 334.6)
    XCTAssertEqual((m["coefficients"] as! [Double])[2], 5.602963, accuracy: 1e-6 * 5.6)

    let pred = dir.path("pred.csv")
    let p = try CLI.run([
      "predict", "--model", model, "--data", CLI.dataset("diabetes.csv"), "--output", pred,
    ])
    XCTAssertEqual(p.status, 0, p.stderr)
    let lines = try String(contentsOfFile: pred, encoding: .utf8).split(separator: "\n")
    XCTAssertEqual(lines.count, 443)
    XCTAssertEqual(lines.first, "progression,prediction")
    let e = try CLI.run([
      "evaluate", "--model", model, "--data", CLI.dataset("diabetes.csv"), "--json",
    ])
    XCTAssertEqual(e.status, 0, e.stderr)
    let metrics = try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as! [String: Double]
    XCTAssertEqual(metrics["r2"]!, 0.5177, accuracy: 1e-4)  // OLS R² on all 442 rows
  }

  func testLogisticOnBreastCancerWithValidation() throws {
    let dir = try TempDir()
    let model = dir.path("model.json")
    let r = try CLI.run([
      "train", "--data", CLI.dataset("breast_cancer.csv"), "--label", "malignant", "--model",
      "logistic", "--l2", "0.001", "--standardize", "--validation-split", "0.25", "--output", model,
    ])
    XCTAssertEqual(r.status, 0, r.stderr)
    XCTAssertTrue(r.stdout.contains("validation"), r.stdout)
    let e = try CLI.run([
      "evaluate", "--model", model, "--data", CLI.dataset("breast_cancer.csv"), "--json",
    ])
    let metrics = try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as! [String: Double]
    XCTAssertGreaterThan(metrics["accuracy"]!, 0.95)
    XCTAssertGreaterThan(metrics["roc_auc"]!, 0.98)
  }

  func testWarmStartFromModelFileConvergesImmediately() throws {
    let dir = try TempDir()
    let first = dir.path("a.json")
    let args = [
      "train", "--data", CLI.dataset("breast_cancer.csv"), "--label", "malignant", "--model",
      "logistic", "--l2", "0.01", "--standardize", "--tolerance", "1e-9",
    ]
    XCTAssertEqual(try CLI.run(args + ["--output", first]).status, 0)
    let second = dir.path("b.json")
    let s2 = dir.path("s2.json")
    let r = try CLI.run(args + ["--output", second, "--warm-start", first, "--summary-json", s2])
    XCTAssertEqual(r.status, 0, r.stderr)
    let s =
      try CLI.json(s2)
    XCTAssertLessThanOrEqual(s["iterations"] as! Int, 3)
  }

  func testCustomPipelineExampleRuns() throws {
    let r = try CLI.run([CLI.dataset("diabetes.csv")], executable: "custom-pipeline")
    XCTAssertEqual(r.status, 0, r.stderr)
    XCTAssertTrue(r.stdout.contains("r2"), r.stdout)
  }

  /// A warm start is read in original units and converted to the new run's standardisation,
  /// so a raw model warm-starts a standardised run (and back) at its optimum when the
  /// penalty units agree: unpenalised least squares is the same problem in both.
  func testWarmStartAcrossStandardisationConvergesImmediately() throws {
    let dir = try TempDir()
    let raw = dir.path("raw.json")
    let args = [
      "train", "--data", CLI.dataset("diabetes.csv"), "--label", "progression", "--solver",
      "lbfgs",
    ]
    XCTAssertEqual(try CLI.run(args + ["--output", raw]).status, 0)
    let summary = dir.path("s.json")
    let r = try CLI.run(
      args + [
        "--standardize", "--warm-start", raw, "--output", dir.path("std.json"), "--summary-json",
        summary,
      ])
    XCTAssertEqual(r.status, 0, r.stderr)
    let s =
      try CLI.json(summary)
    XCTAssertLessThanOrEqual(s["iterations"] as! Int, 3)
  }

  /// The same training metrics in every mode: with workers, MAE, accuracy and ROC AUC are
  /// computed from the workers' predictions of their rows, as one process computes them
  /// (equal within 1e-9 relative; the models agree to rounding).
  func testWorkersReportTheOneProcessTrainingMetrics() throws {
    let dir = try TempDir()
    for (data, label, model) in [
      ("breast_cancer.csv", "malignant", ["--model", "logistic", "--l2", "0.001"]),
      ("diabetes.csv", "progression", ["--model", "ridge", "--l2", "0.01", "--solver", "lbfgs"]),
    ] {
      var metrics: [[String: Double]] = []
      for workers in [[], ["--workers", "3"]] {
        let output = dir.path("m\(metrics.count).json")
        let r = try CLI.run(
          ["train", "--data", CLI.dataset(data), "--label", label, "--standardize"] + model
            + workers + ["--output", output, "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json =
          try CLI.json(output)
        let training = json["training"] as! [String: Any]
        metrics.append(training["train_metrics"] as! [String: Double])
      }
      let expected =
        label == "malignant" ? ["accuracy", "log_loss", "roc_auc"] : ["mae", "mse", "r2", "rmse"]
      XCTAssertEqual(metrics[1].keys.sorted(), expected, data)
      XCTAssertEqual(metrics[0].keys.sorted(), expected, data)
      for key in expected {
        XCTAssertEqual(
          metrics[1][key]!, metrics[0][key]!, accuracy: 1e-9 * max(1, abs(metrics[0][key]!)),
          "\(data) \(key)")
      }
    }
  }

  /// `predict` and `evaluate` treat a row with a missing feature value alike when the
  /// model imputes none: `evaluate` leaves it out, `predict` writes it with an empty
  /// prediction (one output line per input line, in order) and a note; a row missing only
  /// its label is scored.
  func testPredictAndEvaluateTreatMissingValuesAlike() throws {
    let dir = try TempDir()
    let model = dir.path("model.json")
    XCTAssertEqual(
      try CLI.run([
        "train", "--data", CLI.dataset("diabetes.csv"), "--label", "progression", "--output",
        model, "--quiet",
      ]).status, 0)
    let text = try String(contentsOfFile: CLI.dataset("diabetes.csv"), encoding: .utf8)
    var lines = text.split(whereSeparator: \.isNewline).prefix(6).map(String.init)
    lines[2] = "99,," + lines[2].split(separator: ",", maxSplits: 2)[2]  // age missing
    lines[4] = "," + lines[4].split(separator: ",", maxSplits: 1)[1]  // label missing
    let data = try dir.write("missing.csv", lines.joined(separator: "\n") + "\n")
    let output = dir.path("p.csv")
    let p = try CLI.run(["predict", "--model", model, "--data", data, "--output", output])
    XCTAssertEqual(p.status, 0, p.stderr)
    XCTAssertTrue(p.stderr.contains("1 of 5 rows"), p.stderr)
    let rows = try String(contentsOfFile: output, encoding: .utf8).split(
      separator: "\n", omittingEmptySubsequences: false)
    XCTAssertEqual(rows.count, 7)  // header, 5 rows, final newline
    XCTAssertEqual(rows[2], "99,")
    XCTAssertTrue(rows[4].hasPrefix("nan,") && rows[4].count > 4, String(rows[4]))
    let e = try CLI.run(["evaluate", "--model", model, "--data", data])
    XCTAssertEqual(e.status, 0, e.stderr)
    XCTAssertTrue(e.stdout.contains("(3 rows, 2 dropped)"), e.stdout)
  }

  /// A command line that cannot be parsed is one line and exit status 64, no usage text.
  func testUnparsableCommandLineIsOneLine() throws {
    for args in [
      ["train", "--data", "x.csv", "--label", "y", "--l2", "abc"],
      ["train", "--data", "x.csv", "--label", "y", "--drop-first", "sometimes"],
      ["train", "--data", "x.csv", "--label", "y", "--no-such-flag"],
      ["launch", "--workers", "2", "--data", "x.csv", "--label", "y", "--max-restarts", "-1"],
    ] {
      let r = try CLI.run(args)
      XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
      let lines = r.stderr.split(separator: "\n")
      XCTAssertEqual(lines.count, 1, "\(args): \(r.stderr)")
      XCTAssertTrue(lines.first?.hasPrefix("error: ") ?? false, r.stderr)
    }
  }
}
