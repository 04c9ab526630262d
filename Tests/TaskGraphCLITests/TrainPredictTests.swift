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
      try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: summary)))
      as! [String: Any]
    for key in ["load_seconds", "preprocess_seconds", "fit_seconds", "iterations", "objective"] {
      XCTAssertNotNil(s[key], "summary lacks \(key)")
    }
    let m =
      try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: model)))
      as! [String: Any]
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
      try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s2)))
      as! [String: Any]
    XCTAssertLessThanOrEqual(s["iterations"] as! Int, 3)
  }

  func testCustomPipelineExampleRuns() throws {
    let r = try CLI.run([CLI.dataset("diabetes.csv")], executable: "custom-pipeline")
    XCTAssertEqual(r.status, 0, r.stderr)
    XCTAssertTrue(r.stdout.contains("r2"), r.stdout)
  }
}
