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
}
