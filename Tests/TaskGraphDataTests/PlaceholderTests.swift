import XCTest

final class PlaceholderTests_TaskGraphDataTests: XCTestCase {
  func testBuilds() { XCTAssertTrue(true) }
}
