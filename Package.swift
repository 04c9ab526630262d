// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
  name: "TaskGraph",
  platforms: [.macOS(.v15)],
  products: [
    .library(name: "TaskGraphLinalg", targets: ["TaskGraphLinalg"]),
    .library(name: "TaskGraphData", targets: ["TaskGraphData"]),
    .library(name: "TaskGraphML", targets: ["TaskGraphML"]),
    .library(name: "TaskGraph", targets: ["TaskGraph"]),
    .library(name: "TaskGraphGRPC", targets: ["TaskGraphGRPC"]),
    .library(name: "TaskGraphEtcd", targets: ["TaskGraphEtcd"]),
    .library(name: "TaskGraphTraining", targets: ["TaskGraphTraining"]),
    .library(name: "TaskGraphTestSupport", targets: ["TaskGraphTestSupport"]),
    .executable(name: "taskgraph", targets: ["taskgraph"]),
    .executable(name: "custom-pipeline", targets: ["CustomPipeline"]),
    .executable(name: "regression-example", targets: ["RegressionExample"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
    .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
    .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
    .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
    .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
  ],
  targets: [
    .systemLibrary(
      name: "COpenBLAS",
      pkgConfig: "openblas",
      providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
    ),
    .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
    .target(
      name: "CTaskGraphKernels",
      cSettings: [.unsafeFlags(["-O3"])],
      linkerSettings: [.linkedLibrary("m")]
    ),
    .target(
      name: "TaskGraphLinalg", dependencies: ["COpenBLAS", "CTaskGraphKernels"],
      swiftSettings: strict),
    .target(
      name: "TaskGraphData", dependencies: ["TaskGraphLinalg", "CTaskGraphKernels", "CZlib"],
      swiftSettings: strict),
    .target(name: "TaskGraphML", dependencies: ["TaskGraphLinalg"], swiftSettings: strict),
    .target(
      name: "TaskGraph",
      dependencies: ["CTaskGraphKernels", .product(name: "Logging", package: "swift-log")],
      swiftSettings: strict
    ),
    .target(
      name: "TaskGraphGRPC",
      dependencies: [
        "TaskGraph",
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
        .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "NIOCore", package: "swift-nio"),
      ],
      swiftSettings: strict
    ),
    .target(
      name: "TaskGraphEtcd",
      dependencies: [
        "TaskGraph",
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
        .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      swiftSettings: strict
    ),
    .target(
      name: "TaskGraphTraining",
      dependencies: [
        "TaskGraph", "TaskGraphML", "TaskGraphData", "TaskGraphLinalg", "CZlib",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "CoreMetrics", package: "swift-metrics"),
        .product(name: "Prometheus", package: "swift-prometheus"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
      ],
      swiftSettings: strict
    ),
    .target(
      name: "TaskGraphTestSupport",
      dependencies: [
        "TaskGraph",
        .product(name: "Subprocess", package: "swift-subprocess"),
      ],
      swiftSettings: strict
    ),
    .executableTarget(
      name: "taskgraph",
      dependencies: [
        "TaskGraphLinalg", "TaskGraphData", "TaskGraphML", "TaskGraph", "TaskGraphTraining",
        "TaskGraphEtcd", "TaskGraphGRPC", "TaskGraphTestSupport",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strict
    ),
    .executableTarget(
      name: "CustomPipeline",
      dependencies: ["TaskGraphData", "TaskGraphML", "TaskGraphLinalg"],
      path: "Examples/CustomPipeline",
      swiftSettings: strict
    ),
    .executableTarget(
      name: "RegressionExample",
      dependencies: [
        "TaskGraph", "TaskGraphEtcd", "TaskGraphGRPC", "TaskGraphTestSupport",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      path: "Examples/Regression",
      swiftSettings: strict
    ),
    .testTarget(
      name: "TaskGraphLinalgTests", dependencies: ["TaskGraphLinalg"], swiftSettings: strict),
    .testTarget(
      name: "TaskGraphDataTests", dependencies: ["TaskGraphData", "TaskGraphLinalg"],
      exclude: ["Fixtures"], swiftSettings: strict),
    .testTarget(
      name: "TaskGraphMLTests",
      dependencies: ["TaskGraphML", "TaskGraphLinalg", "TaskGraphData"],
      swiftSettings: strict
    ),
    .testTarget(
      name: "TaskGraphTests", dependencies: ["TaskGraph", "TaskGraphTestSupport"],
      swiftSettings: strict),
    .testTarget(
      name: "TaskGraphTrainingTests",
      dependencies: [
        "TaskGraphTraining", "TaskGraph", "TaskGraphML", "TaskGraphData", "TaskGraphLinalg",
        "TaskGraphGRPC",
        .product(name: "MetricsTestKit", package: "swift-metrics"),
        .product(name: "Prometheus", package: "swift-prometheus"),
      ],
      swiftSettings: strict
    ),
    .testTarget(
      name: "TaskGraphIntegrationTests",
      dependencies: [
        "TaskGraphEtcd", "TaskGraphGRPC", "TaskGraphTestSupport", "TaskGraph", "RegressionExample",
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
        .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      swiftSettings: strict
    ),
    .testTarget(
      name: "TaskGraphCLITests",
      dependencies: ["taskgraph", "CustomPipeline", "TaskGraphML", "TaskGraphData"],
      swiftSettings: strict
    ),
  ]
)
