import Foundation
import TaskGraph
import TaskGraphGRPC
import Testing

/// Runs `body` with a transport and a server on 127.0.0.1 serving `handler`.
private func withServer<R: Sendable>(
  configuration: GRPCTransportConfiguration = .defaults,
  handler: @escaping DataRequestHandler,
  _ body: (GRPCTransport, any TransportServer) async throws -> R
) async throws -> R {
  let transport = GRPCTransport(configuration: configuration)
  let server = try await transport.startServer(host: "127.0.0.1", handler: handler)
  do {
    let result = try await body(transport, server)
    await server.stop()
    await transport.close()
    return result
  } catch {
    await server.stop()
    await transport.close()
    throw error
  }
}

private func request(epoch: UInt64 = 4, payload: [UInt8] = []) -> DataRequest {
  DataRequest(
    job: "job", from: 2, to: 1, epoch: epoch, id: 77, method: "gradient", payload: Payload(payload))
}

/// Expects `operation` to throw a `TransportError` with `code`, and returns it.
@discardableResult
private func expectTransportError(
  _ code: TransportError.Code, _ operation: () async throws -> Payload,
  sourceLocation: SourceLocation = #_sourceLocation
) async -> TransportError? {
  do {
    _ = try await operation()
    Issue.record("expected \(code), got a response", sourceLocation: sourceLocation)
  } catch let error as TransportError {
    #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    return error
  } catch {
    Issue.record("expected \(code), got \(error)", sourceLocation: sourceLocation)
  }
  return nil
}

/// Holds every waiter until opened.
private actor Gate {
  private var isOpen = false
  private var waiters: [CheckedContinuation<Void, Never>] = []

  func wait() async {
    if isOpen { return }
    await withCheckedContinuation { waiters.append($0) }
  }

  func open() {
    isOpen = true
    for waiter in waiters { waiter.resume() }
    waiters = []
  }
}

@Suite("GRPCTransport over loopback", .serialized)
struct GRPCTransportTests {
  @Test("round trip of 8 B, 8 KB and 8 MB payloads, every request field delivered")
  func roundTrip() async throws {
    try await withServer(handler: { request in
      #expect(request.job == "job" && request.from == 2 && request.to == 1)
      #expect(request.epoch == 4 && request.id == 77 && request.method == "gradient")
      return Payload(request.payload.bytes.reversed())
    }) { transport, server in
      #expect(server.address.hasPrefix("127.0.0.1:"))
      for size in [8, 8 * 1024, 8 * 1024 * 1024] {
        let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let response = try await transport.send(
          request(payload: payload), to: server.address, timeout: .seconds(30))
        #expect(response.bytes == payload.reversed(), "payload of \(size) bytes")
      }
      // The empty payload survives too.
      #expect(try await transport.send(request(), to: server.address, timeout: .seconds(5)) == [])
    }
  }

  @Test("vectors of doubles are read in place from the received message, both ways")
  func doublesReadInPlace() async throws {
    // 8 MB of doubles, as parameters and gradients travel, after a few bytes that leave
    // them wherever the framing puts them.
    let values = (0..<1_048_576).map { Double($0) * 0.375 - 1e5 }
    @Sendable func shared(_ payload: Payload) -> SharedDoubles? {
      guard payload.parts.count == 2, case .bytes([1, 2, 3]) = payload.parts[0],
        case .sharedDoubles(let read) = payload.parts[1]
      else { return nil }
      return read
    }
    try await withServer(handler: { request in
      let read = try #require(shared(request.payload), "request parts: \(request.payload.parts)")
      #expect(read.wholeArray == nil && read.array == values)
      // Sent on as received, without becoming an array first.
      return Payload(parts: [.bytes([1, 2, 3]), .sharedDoubles(read)])
    }) { transport, server in
      var sent = request()
      sent.payload = Payload(parts: [.bytes([1, 2, 3]), .doubles(values)])
      let reply = try await transport.send(sent, to: server.address, timeout: .seconds(30))
      let read = try #require(shared(reply), "reply parts: \(reply.parts)")
      #expect(read.array.map(\.bitPattern) == values.map(\.bitPattern))
    }
  }

  @Test("many requests in flight on one stream each get their own reply, in any order")
  func concurrentRequests() async throws {
    try await withServer(handler: { request in
      // Later requests tend to finish first; the replies must still find their callers.
      try await Task.sleep(for: .milliseconds(Int(64 - request.id)))
      return Payload(request.payload.bytes + [UInt8(request.id)])
    }) { transport, server in
      try await withThrowingTaskGroup(of: Void.self) { group in
        for id in 0..<64 {
          group.addTask {
            var sent = request(payload: [UInt8](repeating: UInt8(id), count: id * 1000))
            sent.id = UInt64(id)
            let response = try await transport.send(sent, to: server.address, timeout: .seconds(30))
            #expect(response.bytes == sent.payload.bytes + [UInt8(id)], "reply to request \(id)")
          }
        }
        try await group.waitForAll()
      }
    }
  }

  @Test("a request that runs out of time leaves the stream to the others")
  func deadlineOfOneRequest() async throws {
    let (never, release) = AsyncStream<Void>.makeStream()
    try await withServer(handler: { request in
      if request.method == "hang" { for await _ in never {} }
      return request.payload
    }) { transport, server in
      var hanging = request()
      hanging.method = "hang"
      await expectTransportError(.deadlineExceeded) {
        try await transport.send(hanging, to: server.address, timeout: .milliseconds(200))
      }
      let response = try await transport.send(
        request(payload: [4, 2]), to: server.address, timeout: .seconds(5))
      #expect(response == [4, 2])
      release.finish()
    }
  }

  @Test("a short deadline behind a long one on the same stream still runs out on time")
  func shortDeadlineAfterLongOne() async throws {
    let gate = Gate()
    try await withServer(handler: { request in
      await gate.wait()
      return []
    }) { transport, server in
      let long = Task {
        try await transport.send(request(), to: server.address, timeout: .seconds(60))
      }
      let start = ContinuousClock.now
      await expectTransportError(.deadlineExceeded) {
        try await transport.send(request(), to: server.address, timeout: .milliseconds(200))
      }
      #expect(ContinuousClock.now - start < .seconds(10), "the 200 ms deadline was kept")
      await gate.open()
      let answer = try await long.value
      #expect(answer == [], "the long call is answered once the handler returns")
    }
  }

  @Test("a stale-epoch refusal arrives typed, with the server's epoch")
  func staleEpoch() async throws {
    try await withServer(handler: { request in
      throw TransportError.staleEpoch(server: 9, request: request.epoch)
    }) { transport, server in
      let error = await expectTransportError(.staleEpoch) {
        try await transport.send(request(epoch: 4), to: server.address, timeout: .seconds(5))
      }
      #expect(error?.serverEpoch == 9)
    }
  }

  @Test("a handler that does not serve the task now is reported as unavailable")
  func handlerUnavailable() async throws {
    try await withServer(handler: { request in
      throw TransportError(code: .unavailable, message: "not task \(request.to)")
    }) { transport, server in
      await expectTransportError(.unavailable) {
        try await transport.send(request(), to: server.address, timeout: .seconds(5))
      }
      // The connection stays usable: the refusal was the handler's, not the stream's.
      await expectTransportError(.unavailable) {
        try await transport.send(request(), to: server.address, timeout: .seconds(5))
      }
    }
  }

  @Test("a throwing handler is reported as handlerFailed")
  func handlerFailed() async throws {
    struct Boom: Error {}
    try await withServer(handler: { _ in throw Boom() }) { transport, server in
      await expectTransportError(.handlerFailed) {
        try await transport.send(request(), to: server.address, timeout: .seconds(5))
      }
    }
  }

  @Test("a stopped server is unavailable")
  func unavailableAfterStop() async throws {
    let transport = GRPCTransport()
    let server = try await transport.startServer(host: "127.0.0.1") { $0.payload }
    #expect(
      try await transport.send(request(payload: [1]), to: server.address, timeout: .seconds(5)) == [
        1
      ])
    await server.stop()
    let start = ContinuousClock.now
    await expectTransportError(.unavailable) {
      try await transport.send(request(), to: server.address, timeout: .seconds(5))
    }
    #expect(ContinuousClock.now - start < .seconds(5))
    await transport.close()
  }

  @Test("a slow handler runs into the deadline")
  func deadline() async throws {
    let (never, release) = AsyncStream<Void>.makeStream()
    try await withServer(handler: { _ in
      for await _ in never {}
      return []
    }) { transport, server in
      await expectTransportError(.deadlineExceeded) {
        try await transport.send(request(), to: server.address, timeout: .milliseconds(300))
      }
      release.finish()
    }
  }

  @Test("messages above the limit are refused with messageTooLarge, both ways")
  func messageTooLarge() async throws {
    var small = GRPCTransportConfiguration.defaults
    small.maxMessageBytes = 64 * 1024
    try await withServer(
      configuration: small,
      handler: { request in
        Payload([UInt8](repeating: 1, count: Int(request.method) ?? 0))
      }
    ) { transport, server in
      // A request over the limit never leaves the client.
      await expectTransportError(.messageTooLarge) {
        try await transport.send(
          request(payload: [UInt8](repeating: 0, count: 64 * 1024 + 1)), to: server.address,
          timeout: .seconds(5))
      }
      // A response over the server's limit is refused by the server.
      var big = request()
      big.method = "\(64 * 1024 + 1)"
      await expectTransportError(.messageTooLarge) {
        try await transport.send(big, to: server.address, timeout: .seconds(5))
      }
      // Exactly the limit passes.
      big.method = "\(64 * 1024)"
      let exact = try await transport.send(big, to: server.address, timeout: .seconds(5))
      #expect(exact.count == 64 * 1024)
    }
  }

  @Test("the default limit is 64 MiB: one byte more is refused")
  func defaultLimit() async throws {
    let transport = GRPCTransport()
    #expect(transport.configuration.maxMessageBytes == 64 << 20)
    await expectTransportError(.messageTooLarge) {
      try await transport.send(
        request(payload: [UInt8](repeating: 0, count: (64 << 20) + 1)), to: "127.0.0.1:1",
        timeout: .seconds(5))
    }
    await transport.close()
  }

  @Test("the transport benchmark times requests both ways and pushes to several servers at once")
  func benchmarkFanOut() async throws {
    let figures = try await GRPCTransportBenchmark.run(
      payloadSizes: [8, 4096], fanOut: [1, 3], iterations: 3)
    #expect(figures.map(\.payloadBytes) == [8, 8, 4096, 4096, 8, 4096])
    #expect(figures.map(\.servers) == [1, 1, 1, 1, 3, 3])
    #expect(figures.allSatisfy { $0.iterations == 3 && $0.medianSeconds > 0 })
    #expect(figures.filter { $0.servers == 3 }.allSatisfy { $0.description.contains("3 servers") })
  }
}
