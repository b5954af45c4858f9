// swift-tools-version:6.1
// Micro-benchmarks of onnx-fuse's components (loader, matcher, evaluator, saver) with
// ordo-one/benchmark: `scripts/microbench`, or `swift package --package-path Benchmarks benchmark`.
// A package of its own, so that the main package, its users and `swift test` never build the
// benchmark framework.
import PackageDescription

let package = Package(
    name: "onnx-fuse-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "onnx-fuse", path: ".."),
        // The malloc statistics come from the interposer (Swift 6.3+); the ARC runtime
        // interposer (a default trait on Linux with Swift 6.3) is left out.
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "ONNXFuseBenchmarks",
            dependencies: [
                .product(name: "ONNXFuse", package: "onnx-fuse"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/ONNXFuseBenchmarks",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark"),
            ]
        ),
    ]
)
