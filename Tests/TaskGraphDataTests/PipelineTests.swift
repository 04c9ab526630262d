import Foundation
import TaskGraphLinalg
import XCTest

@testable import TaskGraphData

final class PipelineTests: XCTestCase {
  private let train = """
    price,city,size,age
    10,paris,1,5
    20,berlin,2,
    30,rome,3,7
    40,berlin,,9
    50,NA,5,11

    """

  func testOneHotVocabularySortedAndUnseenIsZero() throws {
    let files = try TestFiles()
    let path = try files.write("train.csv", train)
    var options = PipelineOptions(label: "price")
    options.categorical = ["city"]
    let data = try DataPipeline.fit(path: path, options: options, as: Double.self)
    // Rows 2, 4 and 5 have a missing value and are dropped.
    XCTAssertEqual(data.droppedRows, 3)
    XCTAssertEqual(data.featureNames, ["city=paris", "city=rome", "size", "age"])
    XCTAssertEqual(data.x.storage, [1, 0, 1, 5, 0, 1, 3, 7])
    let test = try files.write("test.csv", "age,size,city,price\n1,2,berlin,0\n3,4,rome,0\n")
    let applied = try DataPipeline.apply(
      data.pipeline, path: test, requireLabel: true, as: Double.self)
    // Columns matched by name; berlin was only in dropped training rows: all zeros.
    XCTAssertEqual(applied.x.storage, [0, 0, 2, 1, 0, 1, 4, 3])
  }

  func testMeanAndMedianImputation() throws {
    let files = try TestFiles()
    let path = try files.write("train.csv", train)
    var options = PipelineOptions(label: "price")
    options.categorical = ["city"]
    options.missing = .mean
    let mean = try DataPipeline.fit(path: path, options: options, as: Double.self)
    XCTAssertEqual(mean.droppedRows, 0)
    XCTAssertEqual(mean.featureNames, ["city=berlin", "city=paris", "city=rome", "size", "age"])
    // size: mean of 1, 2, 3, 5 = 2.75; age: mean of 5, 7, 9, 11 = 8.
    XCTAssertEqual(mean.x.row(1), [1, 0, 0, 2, 8])
    XCTAssertEqual(mean.x.row(3), [1, 0, 0, 2.75, 9])
    XCTAssertEqual(mean.x.row(4), [0, 0, 0, 5, 11])  // missing city: all zeros
    options.missing = .median
    let median = try DataPipeline.fit(path: path, options: options, as: Float.self)
    XCTAssertEqual(median.x.row(3), [1, 0, 0, 2.5, 9])
    XCTAssertEqual(median.x.row(1), [1, 0, 0, 2, 8])
    XCTAssertEqual(median.pipeline.columns[1].fill, 2.5)
  }

  func testFloatMatrixReadsThroughAFloatTableWithTheSameResult() throws {
    // A Float matrix is read through a table of Float values (half the memory). Without
    // transforms the matrix is bit-identical to the Double one rounded; with imputation and
    // standardisation fitted on Float-rounded values it agrees to Float precision.
    let files = try TestFiles()
    var text = "y,a,b,c\n"
    var rng = SystemRandomNumberGenerator()
    for r in 0..<500 {
      let a = r % 17 == 0 ? "" : String(Double.random(in: -1e3...1e3, using: &rng))
      let b = String(Double.random(in: 0...1, using: &rng))
      text += "\(r % 3),\(a),\(b),\(["x", "y", "z"][r % 3])\n"
    }
    let path = try files.write("f.csv", text)
    var options = PipelineOptions(label: "y")
    options.categorical = ["c"]
    let double = try DataPipeline.fit(path: path, options: options, as: Double.self)
    let float = try DataPipeline.fit(path: path, options: options, as: Float.self)
    XCTAssertEqual(float.x, double.x.converted(to: Float.self))
    XCTAssertEqual(float.droppedRows, 500 / 17 + 1)
    options.missing = .mean
    options.standardize = true
    let d = try DataPipeline.fit(path: path, options: options, as: Double.self)
    let f = try DataPipeline.fit(path: path, options: options, as: Float.self)
    XCTAssertEqual(f.x.rows, 500)
    for (u, v) in zip(f.pipeline.means ?? [], d.pipeline.means ?? []) {
      XCTAssertEqual(u, v, accuracy: 1e-6 * max(1, abs(v)))
    }
    for r in 0..<500 {
      for j in 0..<f.x.cols {
        XCTAssertEqual(Double(f.x[r, j]), d.x[r, j], accuracy: 1e-5 * max(1, abs(d.x[r, j])))
      }
    }
    let replay = try DataPipeline.apply(f.pipeline, path: path, requireLabel: true, as: Float.self)
    XCTAssertEqual(replay.x, f.x)
  }

  func testStandardisation() throws {
    let files = try TestFiles()
    let path = try files.write("s.csv", "y,a,b,c\n1,1,5,x\n2,2,5,y\n3,3,5,x\n4,6,5,x\n")
    var options = PipelineOptions(label: "y")
    options.categorical = ["c"]
    options.standardize = true
    let data = try DataPipeline.fit(path: path, options: options, as: Double.self)
    // a: mean 3, population std sqrt((4+1+0+9)/4); b: std 0 -> scale 1.
    let std = (14.0 / 4).squareRoot()
    XCTAssertEqual(data.pipeline.means, [3, 5, 0, 0])
    XCTAssertEqual(data.pipeline.scales?[0] ?? 0, std, accuracy: 1e-12)
    XCTAssertEqual(data.pipeline.scales?[1], 1)
    for r in 0..<4 {
      XCTAssertEqual(data.x[r, 0], ([1.0, 2, 3, 6][r] - 3) / std, accuracy: 1e-12)
      XCTAssertEqual(data.x[r, 1], 0)
    }
    XCTAssertEqual(data.x.row(1).suffix(2), [0, 1])
  }

  func testIncludeExcludeAndCodableRoundTrip() throws {
    let files = try TestFiles()
    let path = try files.write("i.csv", "a,y,b,c\n1,2,3,4\n5,6,7,8\n")
    var options = PipelineOptions(label: "y")
    options.include = ["c", "a"]
    var data = try DataPipeline.fit(path: path, options: options, as: Double.self)
    XCTAssertEqual(data.featureNames, ["a", "c"])
    XCTAssertEqual(data.x.storage, [1, 4, 5, 8])
    options.include = nil
    options.exclude = ["b"]
    options.missing = .median
    options.standardize = true
    data = try DataPipeline.fit(path: path, options: options, as: Double.self)
    XCTAssertEqual(data.featureNames, ["a", "c"])
    let encoded = try JSONEncoder().encode(data.pipeline)
    let decoded = try JSONDecoder().decode(FittedPipeline.self, from: encoded)
    XCTAssertEqual(decoded, data.pipeline)
    let replay = try DataPipeline.apply(decoded, path: path, requireLabel: true, as: Double.self)
    XCTAssertEqual(replay.x, data.x)
  }

  func testPredictDataWithoutAFeatureOrTheLabel() throws {
    let files = try TestFiles()
    let path = try files.write("t.csv", "y,a,b\n1,2,3\n4,5,6\n")
    let fitted = try DataPipeline.fitPipeline(path: path, options: PipelineOptions(label: "y"))
    let lacking = try files.write("p.csv", "a,y\n1,2\n")
    let error = assertDataError(.missingFeatureColumn) {
      try DataPipeline.apply(fitted, path: lacking, requireLabel: false, as: Double.self)
    }
    XCTAssertEqual(error?.file, lacking)
    XCTAssertTrue(error?.message.contains("'b'") ?? false, error?.message ?? "")
    let unlabelled = try files.write("u.csv", "b,a\n3,2\n6,\n")
    let predicted = try DataPipeline.apply(
      fitted, path: unlabelled, requireLabel: false, as: Double.self)
    XCTAssertNil(predicted.y)
    XCTAssertEqual(predicted.x.storage, [2, 3])
    XCTAssertEqual(predicted.droppedRows, 1)
    assertDataError(.missingLabelColumn) {
      try DataPipeline.apply(fitted, path: unlabelled, requireLabel: true, as: Double.self)
    }
  }

  func testNonNumericInUndeclaredCategoricalColumn() throws {
    let files = try TestFiles()
    let path = try files.write("train.csv", train)
    let error = assertDataError(.notANumber) {
      try DataPipeline.fit(path: path, options: PipelineOptions(label: "price"), as: Double.self)
    }
    XCTAssertEqual(error?.line, 2)
    XCTAssertEqual(error?.column, 2)
    XCTAssertTrue(error?.message.contains("'city'") ?? false)
    XCTAssertTrue(error?.message.contains("'paris'") ?? false)
  }

  // MARK: - Dropping the first level (treatment coding)

  private let levels = """
    y,color,x,shape
    1,red,0.5,"Ideal, cut"
    2,blue,1.5,round
    3,green,2.5,round
    4,blue,3.5,"Ideal, cut"

    """

  func testDropFirstLeavesOutTheFirstSortedLevel() throws {
    let files = try TestFiles()
    let path = try files.write("levels.csv", levels)
    var options = PipelineOptions(label: "y")
    options.categorical = ["color", "shape"]
    options.dropFirst = true
    let data = try DataPipeline.fit(path: path, options: options, as: Double.self)
    // Sorted levels: blue < green < red and "Ideal, cut" < round (upper case first); the
    // first of each is the reference level, all zeros.
    XCTAssertEqual(data.featureNames, ["color=green", "color=red", "x", "shape=round"])
    XCTAssertEqual(data.pipeline.columns.map(\.width), [2, 1, 1])
    XCTAssertEqual(Array(data.pipeline.columns[0].levels), ["green", "red"])
    XCTAssertEqual(
      data.x.storage,
      [
        0, 1, 0.5, 0,
        0, 0, 1.5, 1,
        1, 0, 2.5, 1,
        0, 0, 3.5, 0,
      ])
    // Replayed on new data: the reference level and an unseen value both give zeros.
    let test = try files.write(
      "test.csv", "shape,x,color,y\nround,1,blue,0\n\"Ideal, cut\",2,purple,0\nround,3,red,0\n")
    let applied = try DataPipeline.apply(
      data.pipeline, path: test, requireLabel: true, as: Double.self)
    XCTAssertEqual(applied.x.storage, [0, 0, 1, 1, 0, 0, 2, 0, 0, 1, 3, 1])
    // Standardisation has one mean and scale per output feature, none for a dropped level.
    options.standardize = true
    let standardized = try DataPipeline.fit(path: path, options: options, as: Double.self)
    XCTAssertEqual(standardized.pipeline.means, [0, 0, 2, 0])
    XCTAssertEqual(standardized.pipeline.scales?.count, 4)
    XCTAssertNil(standardized.pipeline.problem())
    // Without it, every level (the default).
    options.dropFirst = false
    options.standardize = false
    let every = try DataPipeline.fit(path: path, options: options, as: Double.self)
    XCTAssertEqual(
      every.featureNames,
      ["color=blue", "color=green", "color=red", "x", "shape=Ideal, cut", "shape=round"])
  }

  func testDropFirstPolicy() {
    XCTAssertTrue(DropFirstPolicy.auto.dropsFirstLevel(penalized: false))
    XCTAssertFalse(DropFirstPolicy.auto.dropsFirstLevel(penalized: true))
    XCTAssertTrue(DropFirstPolicy.always.dropsFirstLevel(penalized: true))
    XCTAssertFalse(DropFirstPolicy.never.dropsFirstLevel(penalized: false))
    XCTAssertEqual(DropFirstPolicy.allCases.map(\.rawValue), ["auto", "always", "never"])
  }

  func testDropFirstRoundTripsAndOldJSONKeepsEveryLevel() throws {
    let files = try TestFiles()
    let path = try files.write("levels.csv", levels)
    var options = PipelineOptions(label: "y")
    options.categorical = ["color", "shape"]
    options.dropFirst = true
    let data = try DataPipeline.fit(path: path, options: options, as: Double.self)
    // As the model file spells it (snake_case), and as workers receive it (plain keys).
    let snake = JSONEncoder()
    snake.keyEncodingStrategy = .convertToSnakeCase
    snake.outputFormatting = [.sortedKeys]
    let unsnake = JSONDecoder()
    unsnake.keyDecodingStrategy = .convertFromSnakeCase
    let encoded = try snake.encode(data.pipeline)
    XCTAssertEqual(
      String(decoding: encoded, as: UTF8.self).components(separatedBy: "\"drop_first\":true").count,
      3)
    let decoded = try unsnake.decode(FittedPipeline.self, from: encoded)
    XCTAssertEqual(decoded, data.pipeline)
    XCTAssertNil(decoded.problem())
    let plain = try JSONDecoder().decode(
      FittedPipeline.self, from: try JSONEncoder().encode(data.pipeline))
    XCTAssertEqual(plain, data.pipeline)
    let replay = try DataPipeline.apply(decoded, path: path, requireLabel: true, as: Double.self)
    XCTAssertEqual(replay.x, data.x)
    XCTAssertEqual(replay.featureNames, data.featureNames)

    // Keeping every level writes no field at all, so the JSON (and the fingerprints made of
    // it) is what it was before the field existed.
    options.dropFirst = false
    let every = try DataPipeline.fit(path: path, options: options, as: Double.self)
    let everyJSON = String(decoding: try snake.encode(every.pipeline), as: UTF8.self)
    XCTAssertFalse(everyJSON.contains("drop_first"), everyJSON)

    // A pipeline written before the field existed decodes as keeping every level.
    let old = """
      {"columns":[{"kind":{"categorical":{"vocabulary":["blue","green","red"]}},"name":"color"},\
      {"kind":{"numeric":{}},"name":"x"},\
      {"kind":{"categorical":{"vocabulary":["Ideal, cut","round"]}},"name":"shape"}],\
      "feature_names":["color=blue","color=green","color=red","x","shape=Ideal, cut",\
      "shape=round"],"label":"y","missing":"drop"}
      """
    let legacy = try unsnake.decode(FittedPipeline.self, from: Data(old.utf8))
    XCTAssertEqual(legacy, every.pipeline)
    XCTAssertTrue(legacy.columns.allSatisfy { !$0.dropFirst })
    XCTAssertNil(legacy.problem())
    XCTAssertEqual(
      try DataPipeline.apply(legacy, path: path, requireLabel: true, as: Double.self).x, every.x)

    // drop_first on a numeric column is refused when a model file is read.
    var numeric = every.pipeline
    numeric.columns[1].dropFirst = true
    XCTAssertEqual(
      numeric.problem(),
      "columns[1].drop_first is true but column 'x' is numeric: only a categorical column has "
        + "a first level to drop")
  }

  func testDropFirstOnASingleLevelColumn() throws {
    let files = try TestFiles()
    let path = try files.write("one.csv", "y,k,x\n1,only,2\n2,only,3\n")
    var options = PipelineOptions(label: "y")
    options.categorical = ["k"]
    options.dropFirst = true
    // The column gives no feature, and the others are unaffected.
    let data = try DataPipeline.fit(path: path, options: options, as: Double.self)
    XCTAssertEqual(data.featureNames, ["x"])
    XCTAssertEqual(data.pipeline.columns[0].width, 0)
    XCTAssertEqual(data.x.storage, [2, 3])
    XCTAssertNil(data.pipeline.problem())
    let other = try files.write("other.csv", "x,k\n5,only\n6,new\n")
    let applied = try DataPipeline.applyForScoring(data.pipeline, path: other, as: Double.self)
    XCTAssertEqual(applied.prepared.x.storage, [5, 6])
    XCTAssertEqual(applied.unscoredRows, [])
    // With nothing else left there is no feature at all: an error naming the column.
    options.include = ["k"]
    let error = assertDataError(.noFeatures) {
      try DataPipeline.fit(path: path, options: options, as: Double.self)
    }
    XCTAssertEqual(error?.file, path)
    XCTAssertTrue(error?.message.contains("'k'") ?? false, error?.message ?? "")
    var empty = data.pipeline
    empty.columns.removeLast()
    empty.featureNames = []
    XCTAssertEqual(
      empty.problem(),
      "the columns give no features: every column is categorical with a single level, which "
        + "drop_first removes")
  }
}
