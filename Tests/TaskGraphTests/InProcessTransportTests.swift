import TaskGraph
import TaskGraphTestSupport
import XCTest

final class InProcessTransportTests: XCTestCase {
  let request = DataRequest(job: "j", from: 1, to: 2, epoch: 3, id: 4, method: "m", payload: [9])

  func testSendCallsHandlerAndStoppedServerIsUnavailable() async throws {
    let transport = InProcessTransport()
    let server = try await transport.startServer(host: "h") { request in
      Payload(request.payload.bytes + [UInt8(request.epoch)])
    }
    let response = try await transport.send(request, to: server.address, timeout: .seconds(1))
    XCTAssertEqual(response, [9, 3])
    await server.stop()
    do {
      _ = try await transport.send(request, to: server.address, timeout: .seconds(1))
      XCTFail("a stopped server must be unavailable")
    } catch let error as TransportError {
      XCTAssertEqual(error.code, .unavailable)
    }
  }

  func testErrorsAndDeadline() async throws {
    let transport = InProcessTransport()
    let stale = try await transport.startServer(host: "h") { request in
      throw TransportError.staleEpoch(server: 5, request: request.epoch)
    }
    let failing = try await transport.startServer(host: "h") { _ in
      struct Boom: Error {}
      throw Boom()
    }
    let (never, _) = AsyncStream<Void>.makeStream()
    let slow = try await transport.startServer(host: "h") { _ in
      for await _ in never {}
      return []
    }
    XCTAssertNotEqual(stale.address, failing.address)
    for (address, code) in [
      (stale.address, TransportError.Code.staleEpoch),
      (failing.address, .handlerFailed),
      (slow.address, .deadlineExceeded),
    ] {
      do {
        _ = try await transport.send(request, to: address, timeout: .milliseconds(50))
        XCTFail("expected \(code)")
      } catch let error as TransportError {
        XCTAssertEqual(error.code, code)
        if code == .staleEpoch { XCTAssertEqual(error.serverEpoch, 5) }
      }
    }
  }

  func testFaultInjectionIsDeterministicBySeed() async throws {
    func run(seed: UInt64) async throws -> [String] {
      let transport = FaultInjectingTransport(
        wrapping: InProcessTransport(), seed: seed,
        plan: FaultPlan(dropRequest: 0.3, dropResponse: 0.3, duplicate: 0.3))
      let server = try await transport.startServer(host: "h") { $0.payload }
      var outcomes: [String] = []
      for i in 0..<40 {
        var r = request
        r.id = UInt64(i)
        do {
          _ = try await transport.send(r, to: server.address, timeout: .seconds(1))
          outcomes.append("ok")
        } catch let error as TransportError {
          outcomes.append("\(error.code)")
        }
      }
      XCTAssertEqual(transport.counts.mismatchedDuplicates, 0)
      return outcomes
    }
    let a = try await run(seed: 42)
    let b = try await run(seed: 42)
    let c = try await run(seed: 43)
    XCTAssertEqual(a, b)
    XCTAssertNotEqual(a, c)
    XCTAssertTrue(a.contains("unavailable") && a.contains("deadlineExceeded") && a.contains("ok"))
  }
}
