// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "onnx-fuse",
    products: [
        .executable(name: "onnx-fuse", targets: ["onnx-fuse"]),
        .library(name: "ONNXFuse", targets: ["ONNXFuse"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CProtobufC",
            pkgConfig: "libprotobuf-c",
            providers: [.apt(["libprotobuf-c-dev"])]
        ),
        // No unsafeFlags here: they would stop other packages from depending on this one.
        // scripts/test compiles the shim with -Wall -Wextra -Werror instead.
        .target(name: "CONNX", dependencies: ["CProtobufC"]),
        .target(name: "ONNXFuseIR"),
        .target(name: "ONNXFuseProto", dependencies: ["ONNXFuseIR", "CONNX"]),
        .target(name: "ONNXFuseRewrite", dependencies: ["ONNXFuseIR"]),
        .target(name: "ONNXFuseOps", dependencies: ["ONNXFuseIR"]),
        .target(name: "ONNXFuseRules", dependencies: ["ONNXFuseRewrite", "ONNXFuseOps", "ONNXFuseIR"]),
        .target(
            name: "ONNXFuse",
            dependencies: ["ONNXFuseIR", "ONNXFuseProto", "ONNXFuseRewrite", "ONNXFuseOps", "ONNXFuseRules"],
            // Built-in rule files, compiled into the library: the binary needs no file beside it.
            resources: [
                .embedInCode("Rules/batchnorm.rules"),
                .embedInCode("Rules/cleanup.rules"),
                .embedInCode("Rules/affine.rules"),
                .embedInCode("Rules/matmul.rules"),
                .embedInCode("Rules/activation.rules"),
                .embedInCode("Rules/normalization.rules"),
                .embedInCode("Rules/arithmetic.rules"),
                .embedInCode("Rules/attention.rules"),
            ]
        ),
        .executableTarget(
            name: "onnx-fuse",
            dependencies: ["ONNXFuse", "CONNX", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .target(name: "ONNXFuseTestSupport", dependencies: ["ONNXFuseOps"], path: "Tests/Support"),
        .testTarget(name: "CONNXTests", dependencies: ["CONNX"]),
        .testTarget(name: "ONNXFuseIRTests", dependencies: ["ONNXFuseIR", "ONNXFuseTestSupport"]),
        .testTarget(name: "ONNXFuseRewriteTests", dependencies: ["ONNXFuseRewrite", "ONNXFuseIR"]),
        .testTarget(
            name: "ONNXFuseOpsTests",
            dependencies: ["ONNXFuseOps", "ONNXFuseProto", "ONNXFuseIR"],
            exclude: ["NodeCases"]
        ),
        .testTarget(name: "ONNXFuseRulesTests", dependencies: ["ONNXFuseRules", "ONNXFuseRewrite", "ONNXFuseOps", "ONNXFuseIR"]),
        .testTarget(
            name: "ONNXFuseProtoTests",
            dependencies: ["ONNXFuseProto", "ONNXFuseIR", "CONNX", "ONNXFuseTestSupport"]
        ),
        .testTarget(
            name: "ONNXFuseTests",
            dependencies: ["ONNXFuse", "onnx-fuse", "ONNXFuseTestSupport"],
            exclude: ["Snapshots"]
        ),
    ]
)
