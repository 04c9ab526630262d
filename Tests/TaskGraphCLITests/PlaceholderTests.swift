import XCTest

final class PlaceholderTests_TaskGraphCLITests: XCTestCase {
  func testBuilds() { XCTAssertTrue(true) }
}
