import Foundation
import XCTest

/// An output that is also an input of the same run (or another output) is refused before
/// any work, with one line naming both flags, and every file is left as it was: the data,
/// the model, the summary. Paths are compared after resolving `..` and symbolic links.
final class OutputCollisionTests: XCTestCase {
  func testOutputsThatAreInputsAreRefusedAndNothingChanges() throws {
    let dir = try TempDir()
    let data = try dir.write("d.csv", try String(contentsOfFile: CLI.dataset("diabetes.csv")))
    let model = dir.path("m.json")
    XCTAssertEqual(
      try CLI.run(["train", "--data", data, "--label", "progression", "--output", model]).status,
      0)
    try FileManager.default.createSymbolicLink(
      atPath: dir.path("link.csv"), withDestinationPath: data)
    let before = try dir.entries.map { try Data(contentsOf: dir.url.appendingPathComponent($0)) }
    let train = ["train", "--data", data, "--label", "progression"]
    let cases: [([String], String)] = [
      (train + ["--output", data], "--output \(data) is also --data"),
      (train + ["--output", dir.path("link.csv")], "is also --data"),
      (train + ["--output", dir.path("sub/../d.csv")], "is also --data"),
      (
        train + ["--output", dir.path("n.json"), "--summary-json", dir.path("n.json")],
        "--summary-json \(dir.path("n.json")) is also --output"
      ),
      (
        train + ["--output", model, "--warm-start", model],
        "--output \(model) is also --warm-start"
      ),
      (train + ["--output", dir.url.path], "is a directory"),
      (
        train + ["--workers", "2", "--checkpoint-dir", data, "--output", dir.path("n.json")],
        "--checkpoint-dir \(data) is a file"
      ),
      (
        ["predict", "--model", model, "--data", data, "--output", data],
        "--output \(data) is also --data"
      ),
      (
        ["predict", "--model", model, "--data", data, "--output", model],
        "--output \(model) is also --model"
      ),
    ]
    for (args, fragment) in cases {
      let r = try CLI.run(args)
      XCTAssertEqual(r.status, 1, "\(args): \(r.stderr)")
      XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
      XCTAssertTrue(r.stderr.hasPrefix("error: "), r.stderr)
      XCTAssertTrue(r.stderr.contains(fragment), "expected '\(fragment)' in: \(r.stderr)")
      let after = try dir.entries.map {
        try Data(contentsOf: dir.url.appendingPathComponent($0))
      }
      XCTAssertEqual(after, before, "\(args) changed a file")
    }
  }
}
