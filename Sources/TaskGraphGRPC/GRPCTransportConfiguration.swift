import NIOCore

/// Limits and HTTP/2 tuning of a ``GRPCTransport``, shared by its servers and clients.
public struct GRPCTransportConfiguration: Sendable, Hashable {
  /// The largest request or response payload accepted, in bytes; larger ones fail with
  /// `TransportError.Code.messageTooLarge`. At least 1 KiB.
  public var maxMessageBytes: Int {
    didSet { precondition(maxMessageBytes >= 1024, "maxMessageBytes must be at least 1 KiB") }
  }
  /// The HTTP/2 flow-control window each side aims for, in bytes. gRPC's default (64 KiB)
  /// caps loopback throughput near 130 MB/s; 8 MiB lets one large message stream at GB/s.
  public var targetWindowBytes: Int
  /// The largest HTTP/2 frame each side accepts, in bytes (16 KiB…16 MiB - 1).
  public var maxFrameBytes: Int {
    didSet {
      precondition((1 << 14)...((1 << 24) - 1) ~= maxFrameBytes, "maxFrameBytes out of range")
    }
  }

  /// The largest read from a connection's socket, in bytes. NIO's default (64 KiB) splits
  /// a large HTTP/2 frame over many reads, which the frame decoder then copies together;
  /// reads as large as a frame let it take the frame without that copy. Not much larger:
  /// with 4 MiB reads, 8 MB pushed to two servers at once (a master sending two workers
  /// their parameters) took 11.9 ms against 3.3 ms for one server; with 2 MiB (or 1 MiB)
  /// reads, 6.6 ms (`taskgraph bench runtime --payloads 8000000 --fan-out 2`).
  public var maxReadBytes: Int = 2 << 20

  /// Creates a configuration.
  public init(maxMessageBytes: Int, targetWindowBytes: Int, maxFrameBytes: Int) {
    precondition(maxMessageBytes >= 1024, "maxMessageBytes must be at least 1 KiB")
    precondition((1 << 14)...((1 << 24) - 1) ~= maxFrameBytes, "maxFrameBytes out of range")
    self.maxMessageBytes = maxMessageBytes
    self.targetWindowBytes = targetWindowBytes
    self.maxFrameBytes = maxFrameBytes
  }

  /// 64 MiB messages, an 8 MiB window and 1 MiB frames.
  public static var defaults: Self {
    Self(maxMessageBytes: 64 << 20, targetWindowBytes: 8 << 20, maxFrameBytes: 1 << 20)
  }

  /// The read-buffer allocator of a connection: starts at 64 KiB and grows while reads
  /// fill it, up to `maxReadBytes`.
  var readAllocator: AdaptiveRecvByteBufferAllocator {
    AdaptiveRecvByteBufferAllocator(
      minimum: 1024, initial: 64 * 1024, maximum: max(64 * 1024, maxReadBytes))
  }

  /// Room for the request's other fields and protobuf framing on top of the payload.
  static let envelopeBytes = 64 * 1024

  /// The limit given to gRPC: the payload limit plus the envelope.
  var wireLimit: Int { maxMessageBytes + Self.envelopeBytes }
}
