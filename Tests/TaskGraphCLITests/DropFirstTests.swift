import Foundation
import TaskGraphData
import TaskGraphML
import XCTest

/// The diamonds-like case of issue 17: least squares on a design with three categorical
/// columns, which beside the intercept is rank-deficient when every level is one-hot encoded.
///
/// A seeded table (3,000 rows; `cut`, `color`, `clarity` with 5, 7 and 8 levels, some
/// fields quoted, with embedded commas and doubled quotes; three numeric columns; a price
/// that is linear in them plus noise) is trained with `--model linear --solver exact` under
/// every `--drop-first` value, and `predict`'s fitted values are compared with NumPy's
/// `lstsq` on the full one-hot design with an intercept (`Tests/reference/lstsq.py`, which
/// parses the CSV and encodes it independently, run in the private environment
/// `scripts/test.sh` installs). Fitted values are unique even where coefficients are not,
/// so every coding must give the same ones: per row, |ŷ − ŷ_ref| ≤ 1e-9 · |ŷ_ref| (the
/// prices are in the thousands, far from 0).
final class DropFirstTests: XCTestCase {
  static let categorical = ["cut", "color", "clarity"]
  static let levels: [String: [String]] = [
    "cut": ["Fair", "Good", "Very Good", "Premium \"P\"", "Ideal, cut"],
    "color": ["D", "E", "F", "G", "H", "I", "J"],
    "clarity": ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"],
  ]
  static let relativeTolerance = 1e-9

  /// A CSV field: quoted when it must be (comma or quote) and, for a quarter of the plain
  /// values, when it need not be, so that both spellings must give one level.
  static func field(_ value: String, _ rng: inout SplitMix64) -> String {
    if value.contains(",") || value.contains("\"") || rng.next() % 4 == 0 {
      return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
    return value
  }

  /// The diamonds-like table: carat, cut, color, clarity, depth, table, price.
  static func table(rows: Int = 3000, seed: UInt64 = 17) -> String {
    var rng = SplitMix64(seed: seed)
    var text = "carat,cut,color,clarity,depth,table,price\n"
    // Effects per level, in the order of `levels`.
    let effects: [String: [Double]] = [
      "cut": [-400, -150, 0, 120, 260],
      "color": [300, 220, 150, 0, -120, -300, -500],
      "clarity": [-900, -450, -200, 0, 150, 320, 410, 600],
    ]
    for _ in 0..<rows {
      let carat = (Double.random(in: 0.2...3.0, using: &rng) * 100).rounded() / 100
      let depth = 55 + ((0..<4).map { _ in Double.random(in: 0...3.5, using: &rng) }.reduce(0, +))
      let tableWidth = Double(Int.random(in: 53...63, using: &rng))
      var price = 1500 + 3000 * carat + 25 * (depth - 62) - 12 * (tableWidth - 57)
      var fields = [String(carat)]
      for name in categorical {
        let k = Int.random(in: 0..<levels[name]!.count, using: &rng)
        price += effects[name]![k]
        fields.append(field(levels[name]![k], &rng))
      }
      // Noise: a sum of uniforms, roughly normal with standard deviation 50.
      price += ((0..<12).map { _ in Double.random(in: -0.5...0.5, using: &rng) }.reduce(0, +)) * 50
      fields += [
        String((depth * 10).rounded() / 10), String(Int(tableWidth)),
        String((price * 100).rounded() / 100),
      ]
      text += fields.joined(separator: ",") + "\n"
    }
    return text
  }

  struct Reference {
    var fitted: [Double]
    var rank: Int
    var columns: Int
  }

  static func reference(python: String, data: String) throws -> Reference {
    let request: [String: Any] = ["data": data, "label": "price", "categorical": categorical]
    let json =
      try CLI.reference(python: python, script: "lstsq.py", request: request) as? [String: Any]
      ?? [:]
    return Reference(
      fitted: json["fitted"] as? [Double] ?? [], rank: json["rank"] as? Int ?? 0,
      columns: json["columns"] as? Int ?? 0)
  }

  /// A trained model file: its JSON, and the pipeline it records, decoded as the library does.
  struct Trained {
    var json: [String: Any]
    var pipeline: FittedPipeline
    var stderr: String
    var featureNames: [String] { json["feature_names"] as? [String] ?? [] }
    var aliased: [String] {
      (json["training"] as? [String: Any])?["aliased_features"] as? [String] ?? []
    }
  }

  static func train(_ data: String, model: String, _ extra: [String]) throws -> Trained? {
    let columns = categorical.joined(separator: ",")
    let r = try CLI.run(
      [
        "train", "--data", data, "--label", "price", "--categorical", columns, "--solver",
        "exact", "--output", model, "--quiet",
      ] + extra)
    XCTAssertEqual(r.status, 0, "\(extra): \(r.stderr)")
    guard r.status == 0 else { return nil }
    let json = try CLI.json(model)
    let decoder = JSONDecoder()
    decoder.keyDecodingStrategy = .convertFromSnakeCase
    let pre = try JSONSerialization.data(withJSONObject: json["preprocessing"]!)
    let pipeline = try decoder.decode(FittedPipeline.self, from: pre)
    return Trained(json: json, pipeline: pipeline, stderr: r.stderr)
  }

  /// `predict`'s fitted values for `data`, in row order.
  static func predict(_ data: String, model: String) throws -> [Double] {
    let r = try CLI.run(["predict", "--model", model, "--data", data])
    XCTAssertEqual(r.status, 0, r.stderr)
    let lines = r.stdout.split(separator: "\n")
    XCTAssertEqual(lines.first, "price,prediction")
    return lines.dropFirst().map { Double($0.split(separator: ",").last!)! }
  }

  /// Each categorical column's levels in the documented order (sorted), less the first
  /// when `dropFirst`, as feature names, beside the numeric columns, in file order.
  static func expectedFeatureNames(dropFirst: Bool) -> [String] {
    var names = ["carat"]
    for column in categorical {
      names += levels[column]!.sorted().dropFirst(dropFirst ? 1 : 0).map { "\(column)=\($0)" }
    }
    return names + ["depth", "table"]
  }

  func assertFitted(
    _ fitted: [Double], _ reference: Reference, _ what: String, file: StaticString = #filePath,
    line: UInt = #line
  ) {
    XCTAssertEqual(fitted.count, reference.fitted.count, what, file: file, line: line)
    var worst = 0.0
    for (a, b) in zip(fitted, reference.fitted) { worst = max(worst, abs(a - b) / abs(b)) }
    print("drop-first \(what): largest relative difference from lstsq \(worst)")
    XCTAssertLessThanOrEqual(
      worst, Self.relativeTolerance, "\(what): largest relative difference from lstsq",
      file: file, line: line)
  }

  func testEveryDropFirstValueFitsLikeLstsqAndNamesTheAliasedColumns() throws {
    guard let python = ProcessInfo.processInfo.environment["TASKGRAPH_REFERENCE_PYTHON"] else {
      return XCTFail("TASKGRAPH_REFERENCE_PYTHON is not set: run scripts/test.sh")
    }
    let dir = try TempDir()
    let data = try dir.write("diamonds.csv", Self.table())
    let reference = try Self.reference(python: python, data: data)
    XCTAssertEqual(reference.fitted.count, 3000)
    // Intercept, 3 numeric columns, 5 + 7 + 8 levels; one level per column is aliased.
    XCTAssertEqual(reference.columns, 24)
    XCTAssertEqual(reference.rank, 21)

    for value in ["auto", "always", "never"] {
      let model = dir.path("\(value).json")
      guard let trained = try Self.train(data, model: model, ["--drop-first", value]) else {
        continue
      }
      let drops = value != "never"
      XCTAssertEqual(
        trained.featureNames, Self.expectedFeatureNames(dropFirst: drops), value)
      for column in trained.pipeline.columns {
        XCTAssertEqual(
          column.dropFirst, drops && Self.categorical.contains(column.name), column.name)
      }
      if drops {
        XCTAssertEqual(trained.aliased, [], "\(value): \(trained.stderr)")
        XCTAssertFalse(trained.stderr.contains("aliased"), "\(value): \(trained.stderr)")
      } else {
        // Every level beside the intercept: one level of each categorical column is aliased,
        // named in the model file and in a warning.
        XCTAssertEqual(trained.aliased.count, 3, "\(trained.aliased)")
        XCTAssertEqual(
          Set(trained.aliased.map { String($0.prefix { $0 != "=" }) }), Set(Self.categorical),
          "\(trained.aliased)")
        XCTAssertTrue(Set(trained.aliased).isSubset(of: trained.featureNames))
        XCTAssertTrue(trained.stderr.contains("warning:"), trained.stderr)
        for name in trained.aliased {
          XCTAssertTrue(trained.stderr.contains(name), "\(name) not named in: \(trained.stderr)")
        }
      }
      assertFitted(try Self.predict(data, model: model), reference, value)
      // evaluate replays the same columns: its RMSE is the reference's.
      let r = try CLI.run(["evaluate", "--model", model, "--data", data, "--json"])
      XCTAssertEqual(r.status, 0, r.stderr)
      let metrics = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
      let y = try Self.labels(data)
      let rmse =
        (zip(y, reference.fitted).map { ($0 - $1) * ($0 - $1) }.reduce(0, +)
        / Double(y.count)).squareRoot()
      XCTAssertEqual(metrics?["rows"] as? Double, 3000)
      XCTAssertEqual(
        metrics?["rmse"] as? Double ?? 0, rmse, accuracy: 1e-7 * rmse, "\(value) evaluate")
    }
  }

  /// The labels of the generated table (the last field; the label is never quoted).
  static func labels(_ path: String) throws -> [Double] {
    try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").dropFirst().map {
      Double($0.split(separator: ",").last!)!
    }
  }

  func testWorkersShipTheSameDropFirstPipeline() throws {
    guard let python = ProcessInfo.processInfo.environment["TASKGRAPH_REFERENCE_PYTHON"] else {
      return XCTFail("TASKGRAPH_REFERENCE_PYTHON is not set: run scripts/test.sh")
    }
    let dir = try TempDir()
    let data = try dir.write("diamonds.csv", Self.table(rows: 1200, seed: 5))
    let reference = try Self.reference(python: python, data: data)
    let model = dir.path("workers.json")
    guard
      let trained = try Self.train(
        data, model: model, ["--drop-first", "always", "--workers", "2"])
    else { return }
    XCTAssertEqual(trained.featureNames, Self.expectedFeatureNames(dropFirst: true))
    XCTAssertEqual(trained.aliased, [], trained.stderr)
    assertFitted(try Self.predict(data, model: model), reference, "--workers 2")
  }

  func testAutoKeepsEveryLevelUnderAPenalty() throws {
    let dir = try TempDir()
    let data = try dir.write("diamonds.csv", Self.table(rows: 600, seed: 3))
    let model = dir.path("ridge.json")
    guard
      let trained = try Self.train(
        data, model: model, ["--model", "ridge", "--l2", "0.01", "--drop-first", "auto"])
    else { return }
    XCTAssertEqual(trained.featureNames, Self.expectedFeatureNames(dropFirst: false))
    XCTAssertTrue(trained.pipeline.columns.allSatisfy { !$0.dropFirst })
    XCTAssertEqual(trained.aliased, [])
    // Keeping every level writes the model file's preprocessing as before the flag existed.
    let bytes = try Data(contentsOf: URL(fileURLWithPath: model))
    XCTAssertFalse(String(decoding: bytes, as: UTF8.self).contains("drop_first"))
    XCTAssertEqual(try Self.predict(data, model: model).count, 600)
  }

  /// A value that is not auto, always or never is refused before any work, with one error
  /// line that names the flag, the value and the choices (ArgumentParser's usage lines may
  /// follow it, as for every flag that fails to parse).
  func testBadValueIsRefusedWithOneLine() throws {
    let dir = try TempDir()
    let data = try dir.write("diamonds.csv", Self.table(rows: 50))
    let model = dir.path("bad.json")
    let r = try CLI.run([
      "train", "--data", data, "--label", "price", "--categorical", "cut", "--output", model,
      "--drop-first", "sometimes",
    ])
    XCTAssertNotEqual(r.status, 0)
    XCTAssertLessThan(r.status, 128)
    let errors = r.stderr.split(separator: "\n")
    XCTAssertEqual(errors.count, 1, r.stderr)
    let line = String(errors.first ?? "")
    for fragment in ["--drop-first", "'sometimes'", "'auto'", "'always'", "'never'"] {
      XCTAssertTrue(line.contains(fragment), "expected \(fragment) in: \(line)")
    }
    XCTAssertFalse(FileManager.default.fileExists(atPath: model))
  }
}
