import Foundation
import TaskGraphData
import TaskGraphML
import XCTest

@testable import TaskGraphTraining

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A model file is checked whole when it is read: anything `predict` / `evaluate` would trap
/// on or score wrongly is one `badModelFile` error naming the file and the place, in the
/// project's words (never Foundation's).
final class ModelFileValidationTests: XCTestCase {
  /// A valid model: a numeric column (mean-imputed) and a one-hot column, standardised.
  private func model() -> ModelFile {
    let pipeline = FittedPipeline(
      label: "y",
      columns: [
        .init(name: "a", kind: .numeric, fill: 1.5),
        .init(name: "c", kind: .categorical(vocabulary: ["p", "q"])),
      ], missing: .mean, means: [0.5, 0, 0], scales: [2, 1, 1])
    let report = TrainingReport(
      solver: "exact", iterations: 0, stopReason: "solved", objectives: [1, 0.5],
      objective: 0.5, loadSeconds: 0, preprocessSeconds: 0, fitSeconds: 0, msPerIteration: 0,
      rowsRead: 10, rowsDropped: 0, trainRows: 10, validationRows: 0, trainMetrics: [:],
      validationMetrics: [:], precision: "float64", threads: 1, workers: 1)
    return ModelFile(
      model: LinearModel(kind: .ridge, coefficients: [1, -2, 0.25], intercept: 3),
      regularization: Regularization(l2: 0.1), pipeline: pipeline, training: report)
  }

  private func json(_ file: ModelFile) throws -> Any {
    try JSONSerialization.jsonObject(with: file.encoded())
  }

  /// `json` with the value at `path` (keys and array indices) replaced, or removed if nil.
  private func setting(_ json: Any, _ path: ArraySlice<Any>, to value: Any?) -> Any {
    guard let first = path.first else { return value as Any }
    if let index = first as? Int, var array = json as? [Any] {
      array[index] = setting(array[index], path.dropFirst(), to: value)
      return array
    }
    var object = json as! [String: Any]
    let key = first as! String
    if path.count == 1 && value == nil {
      object[key] = nil
    } else {
      object[key] = setting(object[key] as Any, path.dropFirst(), to: value)
    }
    return object
  }

  /// The error of decoding the valid model with `path` set to `value`.
  private func error(
    setting path: [Any], to value: Any?, file: StaticString = #filePath, line: UInt = #line
  ) throws -> TrainingError? {
    let changed = setting(try json(model()), path[...], to: value)
    let data = try JSONSerialization.data(withJSONObject: changed)
    return error(decoding: data, file: file, line: line)
  }

  private func error(decoding data: Data, file: StaticString = #filePath, line: UInt = #line)
    -> TrainingError?
  {
    do {
      _ = try ModelFile.decode(data, path: "model.json")
      XCTFail("the model file was accepted", file: file, line: line)
    } catch let error as TrainingError {
      for raw in ["NSCocoaErrorDomain", "DecodingError", "CodingKeys", "Index ", "Context("] {
        XCTAssertFalse(error.message.contains(raw), error.message, file: file, line: line)
      }
      return error
    } catch {
      XCTFail("expected a TrainingError, got \(error)", file: file, line: line)
    }
    return nil
  }

  private func assertInvalid(
    _ path: [Any], _ value: Any?, _ reason: String, file: StaticString = #filePath,
    line: UInt = #line
  ) throws {
    let e = try error(setting: path, to: value, file: file, line: line)
    XCTAssertEqual(e?.code, .badModelFile, file: file, line: line)
    XCTAssertEqual(
      e?.message, "model.json: not a valid model file: \(reason)", file: file, line: line)
  }

  func testValidModelRoundTrips() throws {
    let file = model()
    XCTAssertEqual(try ModelFile.decode(file.encoded(), path: "model.json"), file)
    let dir = FileManager.default.temporaryDirectory
      .appendingPathComponent("taskgraph-model-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("model.json").path
    try file.write(to: path)
    XCTAssertEqual(try ModelFile.read(from: path), file)
  }

  func testArraysOfDifferentLengthsAreRefused() throws {
    try assertInvalid(
      ["coefficients"], [1, 2], "coefficients has 2 entries but feature_names has 3")
    try assertInvalid(
      ["standardized_coefficients"], [1, 2, 3, 4],
      "standardized_coefficients has 4 entries but feature_names has 3")
    try assertInvalid(
      ["feature_names"], ["a", "c=p"], "coefficients has 3 entries but feature_names has 2")
    try assertInvalid(
      ["feature_names", 1], "c=x",
      "feature_names[1] is 'c=x' but preprocessing.feature_names[1] is 'c=p'")
    try assertInvalid(
      ["preprocessing", "means"], [0, 0],
      "preprocessing.means has 2 entries but there are 3 features")
    try assertInvalid(
      ["preprocessing", "scales"], nil, "preprocessing.means is given without scales")
    try assertInvalid(
      ["preprocessing", "columns", 1, "kind", "categorical", "vocabulary"], ["p"],
      "preprocessing.feature_names has 3 entries but the columns give 2 features")
    try assertInvalid(["label"], "z", "label is 'z' but preprocessing.label is 'y'")
  }

  func testNonFiniteNumbersAndZeroScaleAreRefused() throws {
    try assertInvalid(
      ["coefficients", 1], "inf", "coefficients[1] is inf: expected a finite number")
    try assertInvalid(
      ["standardized_coefficients", 2], "nan",
      "standardized_coefficients[2] is nan: expected a finite number")
    try assertInvalid(["intercept"], "-inf", "intercept is -inf: expected a finite number")
    try assertInvalid(
      ["standardized_intercept"], "nan", "standardized_intercept is nan: expected a finite number")
    try assertInvalid(["l2"], -1, "l2 is -1.0: expected a finite number ≥ 0")
    try assertInvalid(
      ["preprocessing", "scales", 0], 0,
      "preprocessing.scales[0] is 0.0: expected a finite positive number (a standard "
        + "deviation; a zero deviation is stored as 1)")
    try assertInvalid(
      ["preprocessing", "means", 0], "inf",
      "preprocessing.means[0] is inf: expected a finite number")
    try assertInvalid(
      ["preprocessing", "columns", 0, "fill"], "nan",
      "preprocessing.columns[0].fill is nan: expected a finite number")
  }

  func testInconsistentColumnsAreRefused() throws {
    try assertInvalid(
      ["preprocessing", "columns", 1, "kind", "categorical", "vocabulary"], [],
      "preprocessing.columns[1].kind.categorical.vocabulary is empty: expected the values of "
        + "column 'c'")
    try assertInvalid(
      ["preprocessing", "columns", 1, "name"], "a",
      "preprocessing.columns[1].name 'a' repeats columns[0].name")
  }

  func testDecodingErrorsAreInTheProjectsWords() throws {
    try assertInvalid(["coefficients", 1], "abc", "expected a number at coefficients[1]")
    try assertInvalid(
      ["coefficients", 1], NSNull(), "expected a number at coefficients[1], found null")
    try assertInvalid(["intercept"], nil, "missing field 'intercept'")
    try assertInvalid(
      ["preprocessing", "columns", 0, "name"], 5,
      "expected a string at preprocessing.columns[0].name")
    try assertInvalid(["model"], "forest", "unexpected value at model")
    try assertInvalid(["coefficients"], 5, "expected an array at coefficients")
    try assertInvalid(["preprocessing"], "x", "expected an object at preprocessing")
    XCTAssertEqual(
      error(decoding: Data("[1, 2]".utf8))?.message,
      "model.json: not a valid model file: expected an object at the top level")
    XCTAssertEqual(
      error(decoding: Data()).map(\.message),
      "model.json: not a valid model file: the file is empty")
    let broken = error(decoding: Data("{\n  \"format\": \"taskgraph-model\",\n  oops\n}".utf8))
    XCTAssertEqual(
      broken?.message, "model.json: not a valid model file: not valid JSON (near line 3, column 3)")
  }

  func testFormatAndVersionAreChecked() throws {
    let version = try error(setting: ["format_version"], to: 2)
    XCTAssertEqual(version?.code, .unsupportedVersion)
    XCTAssertEqual(
      version?.message,
      "model.json: model format version 2 is not supported (this build reads version 1)")
    let format = try error(setting: ["format"], to: "other")
    XCTAssertEqual(format?.code, .badModelFile)
  }

  func testNonRegularAndMissingFilesAreRefused() throws {
    let dir = FileManager.default.temporaryDirectory
      .appendingPathComponent("taskgraph-model-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let fifo = dir.appendingPathComponent("fifo.json").path
    XCTAssertEqual(mkfifo(fifo, 0o600), 0)
    for (path, message) in [
      (fifo, "\(fifo): not a regular file (a FIFO, device or socket); expected a model file"),
      (dir.path, "\(dir.path): not a regular file (a directory); expected a model file"),
      (
        dir.appendingPathComponent("none.json").path,
        "\(dir.appendingPathComponent("none.json").path): cannot open the model file: No such "
          + "file or directory"
      ),
    ] {
      XCTAssertThrowsError(try ModelFile.read(from: path)) { error in
        XCTAssertEqual((error as? TrainingError)?.code, .io)
        XCTAssertEqual((error as? TrainingError)?.message, message)
      }
    }
  }
}
