import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// The models the benchmarks run on, built with the library's IR and written with its saver,
/// so that no Python or fixture file is needed. The weights are pseudo-random but the same on
/// every run.
enum Models {
    /// `blocks` blocks of Conv (1×1, `channels` channels, no bias) → BatchNormalization → Relu on
    /// a `1×channels×4×4` input: the shape of `shared/bench/gen_chain.py N C`, whose 20,000 × 8
    /// instance is the 60,000-node chain of BENCHMARKS.md. Many nodes, small weights.
    static func chain(blocks: Int, channels: Int) throws -> Model {
        try convBatchNormChain(blocks: blocks, channels: channels, kernel: 1, spatial: 4, name: "chain")
    }

    /// `blocks` blocks of Conv (3×3, `channels` → `channels`, padded) → BatchNormalization → Relu on
    /// a `1×channels×8×8` input: few nodes, large weights (512 channels: 9.4 MB per Conv).
    static func wideConvs(blocks: Int, channels: Int) throws -> Model {
        try convBatchNormChain(blocks: blocks, channels: channels, kernel: 3, spatial: 8, name: "wide")
    }

    private static func convBatchNormChain(blocks: Int, channels c: Int, kernel k: Int, spatial: Int, name: String) throws -> Model {
        var random = SplitMix64(seed: 0)
        let graph = Graph(name: name)
        let shape: [Dimension] = [.value(1), .value(Int64(c)), .value(Int64(spatial)), .value(Int64(spatial))]
        var x = graph.addInput(name: "input", info: ValueInfo(type: .tensor(.float, shape)))
        func initializer(_ name: String, _ dims: [Int64], _ range: ClosedRange<Float>) -> Value {
            let count = dims.reduce(1) { $0 * Int($1) }
            let values = (0..<count).map { _ in random.nextFloat(in: range) }
            return graph.addInitializer(name: name, tensor: Tensor(dataType: .float, dims: dims, values: values))
        }
        let bound = 1 / Float(c * k * k).squareRoot()
        for i in 0..<blocks {
            let w = initializer("w\(i)", [Int64(c), Int64(c), Int64(k), Int64(k)], -bound...bound)
            let s = initializer("s\(i)", [Int64(c)], 0.5...1.5)
            let b = initializer("b\(i)", [Int64(c)], -0.2...0.2)
            let m = initializer("m\(i)", [Int64(c)], -0.5...0.5)
            let v = initializer("v\(i)", [Int64(c)], 0.5...2)
            var convAttributes = [Attribute(name: "kernel_shape", value: .ints([Int64(k), Int64(k)]))]
            if k > 1 {
                let pad = Int64(k / 2)
                convAttributes.append(Attribute(name: "pads", value: .ints([pad, pad, pad, pad])))
            }
            let conv = Node(opType: "Conv", name: "conv\(i)", inputs: [x, w], outputNames: ["c\(i)"], attributes: convAttributes)
            let norm = Node(opType: "BatchNormalization", name: "bn\(i)", inputs: [conv.outputs[0]!, s, b, m, v],
                            outputNames: ["n\(i)"], attributes: [Attribute(name: "epsilon", value: .float(1e-5))])
            let relu = Node(opType: "Relu", name: "relu\(i)", inputs: [norm.outputs[0]!], outputNames: ["r\(i)"])
            for node in [conv, norm, relu] { try graph.append(node) }
            x = relu.outputs[0]!
        }
        try graph.addOutput(x, info: ValueInfo(type: .tensor(.float, shape)))
        return Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
    }

    /// Writes `model` to `directory/name` and returns the path.
    static func write(_ model: Model, to directory: String, name: String) throws -> String {
        let path = directory + "/" + name
        try ModelFile.save(model, to: path)
        return path
    }
}

/// A small, fast, seeded generator (SplitMix64): the same weights on every run and platform.
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A float in `range`, from the top 24 bits.
    mutating func nextFloat(in range: ClosedRange<Float>) -> Float {
        let unit = Float(next() >> 40) / Float(1 << 24)
        return range.lowerBound + unit * (range.upperBound - range.lowerBound)
    }
}
