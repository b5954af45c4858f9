// A line-aware mutator for the `rules` target: byte mutations seldom leave a rule file that
// compiles, and only compiled rules reach the matcher and the evaluator. Half of the mutations
// work on lines and words instead: delete, duplicate or swap lines, replace a word (by one of
// the text's own names, a function, an operator type or a number), or insert a condition or
// computation over the text's names. The other half are libFuzzer's byte mutations.
import FuzzSupport

let functionWords = ["constant", "unused", "absent", "rank", "shape", "dim", "numel", "dtype", "opset", "sqrt", "abs",
                     "neg", "exp", "log", "reciprocal", "reshape", "unsqueeze", "squeeze", "transpose", "matmul", "cast",
                     "default", "ones", "zeros", "zeros_like", "ones_like", "full", "min", "max", "permute", "range",
                     "len", "slice"]
let operatorWords = ["Conv", "ConvTranspose", "BatchNormalization", "Relu", "MatMul", "Gemm", "Add", "Mul", "Sub", "Div",
                     "Transpose", "Reshape", "Identity", "Unsqueeze", "Squeeze", "Abs", "Neg", "Shape", "Gather", "Slice",
                     "Expand", "Where", "Equal", "Range", "ConstantOfShape", "Constant", "Cast", "Pad"]
let otherWords = ["0", "1", "-1", "2", "3", "0.5", "1e-5", "1e308", "-1e308", "9223372036854775807", "[]", "[0]", "[1, 2]",
                  "[-1]", "float", "double", "float16", "int64", "bool", "true", "false", "\"\"", "\"constant\"", "_", "..."]

/// Lines to insert, with `$` and `%` standing for names of the text and `~` for a new one.
let lineTemplates = [
    "where { rank($) >= 0 && dim($, 0) == dim(%, -1) }",
    "where { constant($) && shape($) == shape(%) }",
    "where { dtype($) in [float, double] && numel($) < 100 }",
    "compute { ~ = $ * % }",
    "compute { ~ = reshape($, [-1]) ++ shape(%) }",
    "compute { ~ = matmul($, transpose(%)) }",
    "compute { ~ = cast($, int64) + full(shape(%), 1) }",
    "compute { ~ = squeeze(unsqueeze($, [0]), [0]) / % }",
    "compute { ~ = slice(shape($), 0, rank(%)) }",
    "compute { ~ = permute(shape($), range(rank($))) }",
    "replace { $ = Identity(%) }",
    "replace { $ = Add<...$>(%, ~) }",
    "~ = Relu($)",
    "~ = Mul($, %)",
    "commute Add",
    "benefit 100",
]

@_cdecl("LLVMFuzzerCustomMutator")
public func customMutator(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int, _ seed: CUnsignedInt) -> Int {
    var random = SplitMix(seed: UInt64(seed))
    guard random.below(2) == 1,
          let text = String(validating: UnsafeBufferPointer(start: data, count: size), as: UTF8.self) else {
        return libFuzzerMutate(data, size, maxSize)
    }
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let names = Array(Set(text.split { !($0.isLetter || $0.isNumber || $0 == "_") }.map(String.init)
        .filter { $0.first!.isLetter && $0.count <= 3 }))
    func name() -> String { random.pick(names) ?? "x" }
    for _ in 0..<(1 + random.below(2)) {
        let at = random.below(max(lines.count, 1))
        switch random.below(6) {
        case 0 where lines.count > 1: lines.remove(at: at)
        case 1 where !lines.isEmpty: lines.insert(lines[at], at: at)
        case 2 where lines.count > 1: lines.swapAt(at, random.below(lines.count))
        case 3 where !lines.isEmpty: // replace one word of a line
            var words = lines[at].split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            guard !words.isEmpty else { continue }
            let replacement: String
            switch random.below(4) {
            case 0: replacement = name()
            case 1: replacement = random.pick(functionWords)! + "(" + name() + ")"
            case 2: replacement = random.pick(operatorWords)!
            default: replacement = random.pick(otherWords)!
            }
            words[random.below(words.count)] = replacement
            lines[at] = words.joined(separator: " ")
        default: // insert a line over the text's names
            let line = random.pick(lineTemplates)!
                .replacingOccurrences(of: "$", with: name()).replacingOccurrences(of: "%", with: name())
                .replacingOccurrences(of: "~", with: "v\(random.below(4))")
            lines.insert(line, at: min(at, lines.count))
        }
    }
    let result = Array(lines.joined(separator: "\n").utf8)
    guard !result.isEmpty, result.count <= maxSize else { return libFuzzerMutate(data, size, maxSize) }
    result.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: result.count) }
    return result.count
}

extension String {
    /// Every `target` replaced by `replacement` (Foundation-free).
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
