import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// Serves a Prometheus registry as text at `GET /metrics` over HTTP/1.1.
public final class MetricsEndpoint: Sendable {
  /// The registry served (create metrics on `PrometheusMetricsFactory(registry:)`).
  public let registry: PrometheusCollectorRegistry
  private let channel: any Channel
  /// The port the endpoint listens on (useful when asked for port 0).
  public let port: Int

  private init(registry: PrometheusCollectorRegistry, channel: any Channel) {
    self.registry = registry
    self.channel = channel
    self.port = channel.localAddress?.port ?? 0
  }

  /// Starts listening on `host:port` (port 0 picks a free one).
  public static func start(
    registry: PrometheusCollectorRegistry, host: String = "0.0.0.0", port: Int
  ) async throws -> MetricsEndpoint {
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .serverChannelOption(.backlog, value: 64)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelInitializer { channel in
        channel.pipeline.configureHTTPServerPipeline().flatMap {
          channel.pipeline.addHandler(Handler(registry: registry))
        }
      }
      .bind(host: host, port: port).get()
    return MetricsEndpoint(registry: registry, channel: channel)
  }

  /// Starts an endpoint on a fresh registry and returns it with training metrics that
  /// record into it.
  public static func forTraining(host: String = "0.0.0.0", port: Int) async throws -> (
    MetricsEndpoint, TrainingMetrics
  ) {
    let registry = PrometheusCollectorRegistry()
    let endpoint = try await start(registry: registry, host: host, port: port)
    return (endpoint, TrainingMetrics(factory: PrometheusMetricsFactory(registry: registry)))
  }

  /// Stops listening.
  public func close() async {
    try? await channel.close()
  }

  private final class Handler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let registry: PrometheusCollectorRegistry

    init(registry: PrometheusCollectorRegistry) { self.registry = registry }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
      guard case .head(let head) = unwrapInboundIn(data) else { return }
      let found = head.method == .GET && (head.uri == "/metrics" || head.uri.hasPrefix("/metrics?"))
      let body: [UInt8] = found ? registry.emitToBuffer() : Array("not found\n".utf8)
      var headers = HTTPHeaders()
      headers.add(
        name: "Content-Type",
        value: found ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain")
      headers.add(name: "Content-Length", value: "\(body.count)")
      headers.add(name: "Connection", value: "close")
      let response = HTTPResponseHead(
        version: head.version, status: found ? .ok : .notFound, headers: headers)
      context.write(wrapOutboundOut(.head(response)), promise: nil)
      var buffer = context.channel.allocator.buffer(capacity: body.count)
      buffer.writeBytes(body)
      context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
      let channel = context.channel
      let done = context.eventLoop.makePromise(of: Void.self)
      context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
      done.futureResult.whenComplete { _ in channel.close(promise: nil) }
    }
  }
}
