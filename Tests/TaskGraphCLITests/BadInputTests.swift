import Foundation
import XCTest

/// Every kind of bad input gets a one-line error naming the file (and line, where there is
/// one), a non-zero exit, and no model or prediction file; an existing file is untouched.
final class BadInputTests: XCTestCase {
  /// Trains on `name` with `contents` into a model path that holds a previous model, and
  /// checks the failure. Returns the error line.
  @discardableResult
  func assertTrainFails(
    _ name: String, _ contents: [UInt8], label: String = "y", expect fragments: [String],
    extra: [String] = [], file: StaticString = #filePath, line: UInt = #line
  ) throws -> String {
    let dir = try TempDir()
    let data = try dir.write(name, bytes: contents)
    let model = dir.path("model.json")
    try Data("previous model".utf8).write(to: URL(fileURLWithPath: model))
    let r = try CLI.run(
      ["train", "--data", data, "--label", label, "--output", model, "--quiet"] + extra)
    XCTAssertNotEqual(r.status, 0, "train succeeded on bad input", file: file, line: line)
    let errorLines = r.stderr.split(separator: "\n").filter { $0.hasPrefix("error:") }
    XCTAssertEqual(errorLines.count, 1, r.stderr, file: file, line: line)
    let message = String(errorLines.first ?? "")
    XCTAssertTrue(
      message.contains(name), "error does not name the file: \(message)", file: file, line: line)
    for f in fragments {
      XCTAssertTrue(message.contains(f), "expected '\(f)' in: \(message)", file: file, line: line)
    }
    XCTAssertEqual(
      try String(contentsOfFile: model, encoding: .utf8), "previous model", file: file, line: line)
    XCTAssertEqual(
      dir.entries, [name, "model.json"].sorted(), "stray files left behind", file: file, line: line)
    return message
  }

  func text(_ s: String) -> [UInt8] { Array(s.utf8) }

  func testRaggedRow() throws {
    try assertTrainFails("ragged.csv", text("y,a,b\n1,2,3\n4,5\n"), expect: [":3"])
  }

  func testNonNumericValue() throws {
    try assertTrainFails("letters.csv", text("y,a\n1,2\n3,abc\n"), expect: [":3", "abc"])
  }

  func testUnterminatedQuote() throws {
    try assertTrainFails("quote.csv", text("y,a\n1,2\n3,\"4\n5,6\n"), expect: [":3"])
  }

  func testEmptyFile() throws {
    try assertTrainFails("empty.csv", [], expect: [])
  }

  func testHeaderOnly() throws {
    try assertTrainFails("header.csv", text("y,a,b\n"), expect: [])
  }

  func testLabelColumnMissing() throws {
    try assertTrainFails("nolabel.csv", text("a,b\n1,2\n"), label: "y", expect: ["'y'"])
  }

  func testDuplicateColumnNames() throws {
    try assertTrainFails("dup.csv", text("y,a,a\n1,2,3\n"), expect: ["a"])
  }

  /// LIBSVM and .npy input hold the label first: `--label` may be omitted, and a name other
  /// than `label` is an error naming it (it was silently ignored). CSV input needs `--label`.
  func testLabelOfUnnamedFormatsNeedsNoFlagAndRefusesOtherNames() throws {
    try assertTrainFails("svm.svm", text("1 1:0.5\n0 1:1.5\n1 1:2\n"), label: "y", expect: ["'y'"])
    try assertTrainFails(
      "unnamed.csv", text("y,a\n1,2\n2,3\n3,5\n"), label: "label", expect: ["--label", "y, a"])
    let dir = try TempDir()
    let data = try dir.write("ok.svm", "1 1:0.5\n0 1:1.5\n1 1:2\n0 1:3\n")
    let model = dir.path("m.json")
    let r = try CLI.run(["train", "--data", data, "--output", model, "--quiet"])
    XCTAssertEqual(r.status, 0, r.stderr)
    XCTAssertEqual(try CLI.json(model)["label"] as? String, "label")
  }

  func testLIBSVMIndexZero() throws {
    try assertTrainFails("zero.svm", text("1 1:0.5\n0 0:1.5\n"), label: "label", expect: [":2"])
  }

  func testLIBSVMNegativeIndex() throws {
    try assertTrainFails("neg.svm", text("1 -3:0.5\n"), label: "label", expect: [":1"])
  }

  func testLIBSVMNonIntegerIndex() throws {
    try assertTrainFails("frac.svm", text("1 1:2\n1 1.5:0.5\n"), label: "label", expect: [":2"])
  }

  func testLIBSVMUnsortedIndices() throws {
    try assertTrainFails("unsorted.svm", text("1 3:1 2:1\n"), label: "label", expect: [":1"])
  }

  func npy(descr: String, fortran: Bool = false, shape: String = "(2, 2)", payload: Int = 32)
    -> [UInt8]
  {
    var header =
      "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shape), }"
    while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
    bytes += [UInt8(header.utf8.count & 0xff), UInt8(header.utf8.count >> 8)]
    bytes += Array(header.utf8)
    bytes += [UInt8](repeating: 0, count: payload)
    return bytes
  }

  func testNPYWrongMagic() throws {
    var bytes = npy(descr: "<f8")
    bytes[1] = UInt8(ascii: "X")
    try assertTrainFails("magic.npy", bytes, label: "label", expect: ["magic"])
  }

  func testNPYUnsupportedDtype() throws {
    try assertTrainFails("int.npy", npy(descr: "<i8"), label: "label", expect: ["<i8"])
  }

  func testNPYFortranOrder() throws {
    try assertTrainFails(
      "fortran.npy", npy(descr: "<f8", fortran: true), label: "label", expect: ["ortran"])
  }

  func testNPYTruncated() throws {
    try assertTrainFails(
      "short.npy", npy(descr: "<f8", payload: 20), label: "label", expect: ["truncated"])
  }

  func testCorruptedGzip() throws {
    // A valid gzip header followed by garbage.
    let bytes: [UInt8] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3] + [UInt8](repeating: 0xAB, count: 64)
    try assertTrainFails("broken.csv.gz", bytes, expect: ["gzip"])
  }

  func testModelFileOfAnotherVersion() throws {
    let dir = try TempDir()
    let model = try dir.write(
      "future.json", #"{"format": "taskgraph-model", "format_version": 99}"#)
    let out = dir.path("pred.csv")
    let r = try CLI.run([
      "predict", "--model", model, "--data", CLI.dataset("diabetes.csv"), "--output", out,
    ])
    XCTAssertNotEqual(r.status, 0)
    XCTAssertTrue(r.stderr.contains("future.json"), r.stderr)
    XCTAssertTrue(r.stderr.contains("version 99"), r.stderr)
    XCTAssertFalse(FileManager.default.fileExists(atPath: out))
  }

  func testPredictDataLackingAFeature() throws {
    let dir = try TempDir()
    let model = dir.path("m.json")
    XCTAssertEqual(
      try CLI.run([
        "train", "--data", CLI.dataset("diabetes.csv"), "--label", "progression", "--output", model,
        "--quiet",
      ]).status, 0)
    let data = try dir.write("less.csv", "progression,age,sex\n1,2,3\n")
    let out = dir.path("pred.csv")
    let r = try CLI.run(["predict", "--model", model, "--data", data, "--output", out])
    XCTAssertNotEqual(r.status, 0)
    XCTAssertTrue(r.stderr.contains("less.csv"), r.stderr)
    XCTAssertTrue(r.stderr.contains("bmi"), r.stderr)
    XCTAssertFalse(FileManager.default.fileExists(atPath: out))
  }

  /// A row the model cannot score (a missing feature value, no imputation fitted) gets an
  /// empty prediction and a note, as `evaluate` leaves it out: never a guessed value.
  func testPredictRowWithMissingValueHasNoPredictionWithoutImputation() throws {
    let dir = try TempDir()
    let train = try dir.write("t.csv", "y,a\n1,1\n2,2\n3,3.5\n")
    let model = dir.path("m.json")
    XCTAssertEqual(
      try CLI.run(["train", "--data", train, "--label", "y", "--output", model, "--quiet"]).status,
      0)
    let data = try dir.write("p.csv", "y,a\n1,1\n2,\n")
    let out = dir.path("pred.csv")
    let r = try CLI.run(["predict", "--model", model, "--data", data, "--output", out])
    XCTAssertEqual(r.status, 0, r.stderr)
    XCTAssertTrue(r.stderr.contains("1 of 2 rows have a missing feature value"), r.stderr)
    let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
    XCTAssertEqual(lines.count, 3)
    XCTAssertEqual(lines.last, "2,")
  }

  /// `--partition columns` without workers, or with the exact solver (ridge's default), is
  /// refused before any training: a non-zero exit, the reason, and the old model untouched.
  func testColumnsPartitionIsCheckedUpFront() throws {
    let dir = try TempDir()
    let model = dir.path("model.json")
    try Data("previous model".utf8).write(to: URL(fileURLWithPath: model))
    let train = [
      "train", "--data", CLI.dataset("diabetes.csv"), "--label", "progression", "--model",
      "ridge", "--l2", "0.01", "--output", model, "--quiet", "--partition", "columns",
    ]
    for (extra, reason) in [
      ([], "--partition needs --workers"), (["--workers", "2"], "needs an iterative solver"),
    ] {
      let r = try CLI.run(train + extra)
      XCTAssertNotEqual(r.status, 0, r.stderr)
      XCTAssertTrue(r.stderr.contains(reason), r.stderr)
      XCTAssertEqual(try String(contentsOfFile: model, encoding: .utf8), "previous model")
    }
  }
}

extension BadInputTests {
  /// `--staleness` without workers was ignored (a one-process fit, exit 0); it is refused
  /// before any training, and the old model is untouched.
  func testStalenessWithoutWorkersIsRefused() throws {
    let dir = try TempDir()
    let model = dir.path("model.json")
    try Data("previous model".utf8).write(to: URL(fileURLWithPath: model))
    let r = try CLI.run([
      "train", "--data", CLI.dataset("diabetes.csv"), "--label", "progression", "--solver",
      "sgd", "--staleness", "2", "--output", model, "--quiet",
    ])
    XCTAssertEqual(r.status, 1, r.stderr)
    XCTAssertEqual(r.stderr, "error: --staleness needs --workers\n")
    XCTAssertEqual(try String(contentsOfFile: model, encoding: .utf8), "previous model")
  }
}
