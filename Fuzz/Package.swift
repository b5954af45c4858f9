// swift-tools-version:6.0
// libFuzzer targets for onnx-fuse (`scripts/fuzz TARGET SECONDS`). A package of its own, so that
// the main package gains no unsafe flags and `swift test` does not build these. scripts/fuzz
// builds them with `--sanitize=fuzzer --sanitize=address`, which instruments the library too.
import PackageDescription

// The entry point is libFuzzer's main(), which calls LLVMFuzzerTestOneInput: no top-level code.
let harness: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

let package = Package(
    name: "onnx-fuse-fuzz",
    dependencies: [
        .package(name: "onnx-fuse", path: ".."),
    ],
    targets: [
        .target(name: "FuzzSupport", dependencies: [.product(name: "ONNXFuse", package: "onnx-fuse")]),
        .executableTarget(name: "fuzz-model", dependencies: ["FuzzSupport"], path: "Sources/FuzzModel", swiftSettings: harness),
        .executableTarget(name: "fuzz-rules", dependencies: ["FuzzSupport"], path: "Sources/FuzzRules", swiftSettings: harness),
    ]
)
