import ONNXFuseIR
import ONNXFuseOps
import ONNXFuseRewrite

/// The functions `where` and `compute` expressions may call, by name. `builtins` holds the
/// language's own; a program may add native functions with `register` (as MLIR's PDL registers
/// native constraints and rewrites by name) and hand the table to the evaluator.
public struct FunctionTable: Sendable {
    /// A function's implementation: it gets the evaluated arguments, already checked for count.
    public typealias Body = @Sendable ([EvalValue]) throws(EvaluationError) -> EvalValue

    /// A native function that also sees the match its rule is evaluated for
    /// (`register(matchFunction:arity:kinds:_:)`).
    public typealias MatchBody = @Sendable (NativeFunctionCall) throws(EvaluationError) -> EvalValue

    struct Entry: Sendable {
        var arity: ClosedRange<Int>
        var kinds: [ArgumentKind]
        var implementation: Implementation
        /// One of `builtins`, not replaced since.
        var isBuiltin = false
    }

    /// A function's body: of its arguments alone, or of them and the match.
    enum Implementation: Sendable {
        case plain(Body)
        case seeingMatch(MatchBody)
    }

    private var entries: [String: Entry] = [:]

    /// The longest list `ones`, `zeros` and `range` make (`EvaluationLimits.current`).
    public static var maximumListLength: Int { EvaluationLimits.current.maximumListLength }

    /// An empty table.
    public init() {}

    /// Whether `name` is a function of this table.
    public func contains(_ name: String) -> Bool { entries[name] != nil }

    /// Whether `name` is the language's own function of that name (not a native one that
    /// replaced it): the evaluator may then compute a call of it its own way (`StreamedTensor`).
    func isBuiltin(_ name: String) -> Bool { entries[name]?.isBuiltin ?? false }

    /// How many arguments `name` takes, or nil when there is no such function (for checking
    /// calls when a rule file is loaded).
    public func arity(of name: String) -> ClosedRange<Int>? { entries[name]?.arity }

    /// What the arguments of `name` must be, by position (the last kind repeats); empty when
    /// anything goes or there is no such function. Literal arguments are checked against it when
    /// a rule file is loaded.
    public func argumentKinds(of name: String) -> [ArgumentKind] { entries[name]?.kinds ?? [] }

    /// The function names, sorted.
    public var names: [String] { entries.keys.sorted() }

    /// Calls `name` with `arguments`; an unknown name or a wrong argument count is an error.
    public func call(_ name: String, _ arguments: [EvalValue]) throws(EvaluationError) -> EvalValue {
        try resolve(name).call(arguments)
    }

    /// `name`'s function looked up once, to call many times (`LoweredExpression`).
    func resolve(_ name: String) -> ResolvedFunction { ResolvedFunction(name: name, entry: entries[name]) }

    /// Adds the function `name` taking `arity` arguments of `kinds` (by position, the last one
    /// repeating; none: anything), replacing any function of that name.
    public mutating func register(_ name: String, arity: ClosedRange<Int>, kinds: [ArgumentKind] = [], _ body: @escaping Body) {
        precondition(arity.lowerBound >= 0, "negative arity for \(name)")
        entries[name] = Entry(arity: arity, kinds: kinds, implementation: .plain(body))
    }

    /// Adds the function `name`, as `register(_:arity:kinds:_:)` does, whose body also sees the
    /// match: the graph values, nodes and attributes the rule's variables are bound to
    /// (`NativeFunctionCall.match`). What it answers depends on the graph, so a `compute` that
    /// calls it records the answer and gives the same one when the tensor is made again at save.
    public mutating func register(matchFunction name: String, arity: ClosedRange<Int>, kinds: [ArgumentKind] = [],
                                  _ body: @escaping MatchBody) {
        precondition(arity.lowerBound >= 0, "negative arity for \(name)")
        entries[name] = Entry(arity: arity, kinds: kinds, implementation: .seeingMatch(body))
    }

    /// The built-in functions.
    ///
    /// - `sqrt abs neg exp log reciprocal`: element-wise on tensors (keeping the element type),
    ///   or on numbers (`abs` and `neg` keep integers integers).
    /// - `reshape(t, shape)`, `unsqueeze(t, axes)`, `squeeze(t)`, `squeeze(t, axes)`,
    ///   `transpose(t)`, `transpose(t, perm)`, `matmul(a, b)`: as the `NDArray` methods.
    /// - `cast(t, dtype)`: the values `dtype` holds (`NDArray.cast(to:)`), now of that type.
    /// - `zeros_like(t)`, `ones_like(t)`: same shape and element type.
    /// - `numel(t)`, `rank(t)`: integers; `shape(t)`: a list of integers; `dim(t, axis)`: one
    ///   dimension (negative axes count from the end); `dtype(t)`: the element type, or absent
    ///   for a literal.
    /// - `default(v, x)`: `v` unless it is absent, else `x`.
    /// - `ones(n)`: a list of `n` integer 1s, for shapes: `[dim(w, 0)] ++ ones(rank(w) - 1)`.
    /// - `min(a, b)`, `max(a, b)`: of two numbers (integers when both are).
    /// - `permute(list, perm)`: the list whose item `i` is `list[perm[i]]` (`perm` a list of
    ///   integers, each in range; a tensor argument is read as a flat list).
    /// - `range(n)`: the list of integers `[0, 1, ..., n - 1]`.
    /// - `len(list)`: the number of items of a list (of elements of a tensor).
    /// - `opset()`, `opset(domain)`: the model's imported version of an operator set; only in
    ///   rules, whose evaluation answers it from the model (here it is an error).
    ///
    /// Tensor arguments may also be numbers (rank 0) or lists of numbers (literals).
    public static let builtins: FunctionTable = {
        var table = FunctionTable()
        let unary: [(String, @Sendable (NDArray) -> NDArray, (@Sendable (Int64) throws(EvaluationError) -> Int64)?)] = [
            ("sqrt", { $0.sqrt() }, nil),
            ("abs", { $0.abs() }, { i throws(EvaluationError) in
                guard i != .min else { throw EvaluationError("integer overflow in abs(\(i))") }
                return Swift.abs(i)
            }),
            ("neg", { $0.neg() }, { i throws(EvaluationError) in
                guard i != .min else { throw EvaluationError("integer overflow in neg(\(i))") }
                return -i
            }),
            ("exp", { $0.exp() }, nil),
            ("log", { $0.log() }, nil),
            ("reciprocal", { $0.reciprocal() }, nil),
        ]
        for (name, operation, onInteger) in unary {
            table.register(name, arity: 1...1, kinds: [.tensor]) { arguments throws(EvaluationError) in
                switch arguments[0] {
                case .integer(let i):
                    if let onInteger { return .integer(try onInteger(i)) }
                    return .real(operation(.scalar(Double(i))).values[0])
                case .real(let r):
                    return .real(operation(.scalar(r)).values[0])
                default:
                    let (array, type) = try tensorArgument(name, arguments, 0)
                    return .tensor(operation(array), type)
                }
            }
        }
        table.register("reshape", arity: 2...2, kinds: [.tensor, .integers]) { arguments throws(EvaluationError) in
            let (array, type) = try tensorArgument("reshape", arguments, 0)
            return .tensor(try array.reshape(try integersArgument("reshape", arguments, 1)), type)
        }
        table.register("unsqueeze", arity: 2...2, kinds: [.tensor, .integers]) { arguments throws(EvaluationError) in
            let (array, type) = try tensorArgument("unsqueeze", arguments, 0)
            return .tensor(try array.unsqueeze(axes: try integersArgument("unsqueeze", arguments, 1)), type)
        }
        table.register("squeeze", arity: 1...2, kinds: [.tensor, .integers]) { arguments throws(EvaluationError) in
            let (array, type) = try tensorArgument("squeeze", arguments, 0)
            let axes = try arguments.count > 1 ? integersArgument("squeeze", arguments, 1) : nil
            return .tensor(try array.squeeze(axes: axes), type)
        }
        table.register("transpose", arity: 1...2, kinds: [.tensor, .integers]) { arguments throws(EvaluationError) in
            let (array, type) = try tensorArgument("transpose", arguments, 0)
            let perm = try arguments.count > 1 ? integersArgument("transpose", arguments, 1) : nil
            return .tensor(try array.transpose(perm), type)
        }
        table.register("matmul", arity: 2...2, kinds: [.tensor, .tensor]) { arguments throws(EvaluationError) in
            let (a, typeA) = try tensorArgument("matmul", arguments, 0)
            let (b, typeB) = try tensorArgument("matmul", arguments, 1)
            let type = try combinedElementType(typeA, typeB)
            return .tensor(try a.matmul(b), type)
        }
        table.register("cast", arity: 2...2, kinds: [.tensor, .dataType]) { arguments throws(EvaluationError) in
            let (array, _) = try tensorArgument("cast", arguments, 0)
            let type: DataType
            do throws(EvaluationError) {
                type = try arguments[1].asDataType()
            } catch {
                throw EvaluationError("cast: argument 2: \(error.message)")
            }
            guard NDArray.canCompute(with: type) else { throw EvaluationError("cast: cannot compute with \(type)") }
            return .tensor(try array.cast(to: type), type)
        }
        table.register("zeros_like", arity: 1...1, kinds: [.tensor]) { arguments throws(EvaluationError) in
            let (array, type) = try tensorArgument("zeros_like", arguments, 0)
            return .tensor(array.zerosLike(), type)
        }
        table.register("ones_like", arity: 1...1, kinds: [.tensor]) { arguments throws(EvaluationError) in
            let (array, type) = try tensorArgument("ones_like", arguments, 0)
            return .tensor(array.onesLike(), type)
        }
        table.register("numel", arity: 1...1) { arguments throws(EvaluationError) in
            .integer(Int64(try tensorArgument("numel", arguments, 0).0.count))
        }
        table.register("rank", arity: 1...1) { arguments throws(EvaluationError) in
            .integer(Int64(try tensorArgument("rank", arguments, 0).0.rank))
        }
        table.register("shape", arity: 1...1) { arguments throws(EvaluationError) in
            .list(try tensorArgument("shape", arguments, 0).0.shape.map { .integer(Int64($0)) })
        }
        table.register("dim", arity: 2...2) { arguments throws(EvaluationError) in
            let shape = try tensorArgument("dim", arguments, 0).0.shape
            let axis = try integerArgument("dim", arguments, 1)
            return .integer(Int64(shape[try NDArray.normalize(axis: Int(axis), rank: shape.count, "dim")]))
        }
        table.register("dtype", arity: 1...1) { arguments throws(EvaluationError) in
            try tensorArgument("dtype", arguments, 0).1.map { .dataType($0) } ?? .absent
        }
        table.register("default", arity: 2...2) { arguments throws(EvaluationError) in
            arguments[0] == .absent ? arguments[1] : arguments[0]
        }
        table.register("full", arity: 2...2, kinds: [.integers, .number]) { arguments throws(EvaluationError) in
            // A tensor of the given shape filled with one number; its element type adapts to
            // the tensors it is combined with, like any literal.
            let shape = try arguments[0].asIntegers()
            guard shape.allSatisfy({ $0 >= 0 }) else { throw EvaluationError("full: the shape \(shape) has a negative dimension") }
            guard let value = arguments[1].numberValue else { throw EvaluationError("full: the value is \(arguments[1].kind), not a number") }
            try NDArray.checkSize(shape, "full")
            let count = NDArray.elementCount(shape)!
            if case .integer(let integer) = arguments[1] { return .tensor(NDArray(shape: shape, integers: repeated(integer, count: count)), nil) }
            return .tensor(NDArray(shape: shape, values: repeated(value, count: count)), nil)
        }
        table.register("ones", arity: 1...1, kinds: [.integer]) { arguments throws(EvaluationError) in
            let n = try integerArgument("ones", arguments, 0)
            guard n >= 0 else { throw EvaluationError("ones: the count \(n) is negative") }
            guard n <= Self.maximumListLength else { throw EvaluationError.limit("ones: the count \(n) is more than the limit of \(Self.maximumListLength)") }
            return .list(repeated(.integer(1), count: Int(n)))
        }
        table.register("zeros", arity: 1...1, kinds: [.integer]) { arguments throws(EvaluationError) in
            let n = try integerArgument("zeros", arguments, 0)
            guard n >= 0 else { throw EvaluationError("zeros: the count \(n) is negative") }
            guard n <= Self.maximumListLength else { throw EvaluationError.limit("zeros: the count \(n) is more than the limit of \(Self.maximumListLength)") }
            return .list(repeated(.integer(0), count: Int(n)))
        }
        table.register("slice", arity: 3...3, kinds: [.list, .integer, .integer]) { arguments throws(EvaluationError) in
            // Items start..<end; a negative index counts from the end, as in Python, but an
            // index beyond the list is an error rather than clamped.
            let items = try listArgument("slice", arguments, 0)
            let count = Int64(items.count)
            var bounds: [Int64] = []
            for index in 1...2 {
                let bound = try integerArgument("slice", arguments, index)
                let resolved = bound < 0 ? bound + count : bound
                guard resolved >= 0 && resolved <= count else {
                    throw EvaluationError("slice: index \(bound) is out of range for a list of \(count)")
                }
                bounds.append(resolved)
            }
            guard bounds[0] <= bounds[1] else {
                throw EvaluationError("slice: the start \(bounds[0]) is after the end \(bounds[1])")
            }
            return .list(Array(items[Int(bounds[0])..<Int(bounds[1])]))
        }
        for name in ["min", "max"] {
            table.register(name, arity: 2...2, kinds: [.number, .number]) { arguments throws(EvaluationError) in
                let (a, b) = (arguments[0], arguments[1])
                guard a.numberValue != nil, b.numberValue != nil else {
                    throw EvaluationError("\(name) takes two numbers, got \(a.kind) and \(b.kind)")
                }
                guard let order = compareNumbers(a, b) else { return .real(.nan) }
                let pick = (name == "min") == (order <= 0) ? a : b
                if case .integer = a, case .integer = b { return pick }
                return .real(pick.numberValue!)
            }
        }
        table.register("permute", arity: 2...2, kinds: [.list, .integers]) { arguments throws(EvaluationError) in
            let items = try listArgument("permute", arguments, 0)
            let perm = try integersArgument("permute", arguments, 1)
            var result: [EvalValue] = []
            for index in perm {
                guard index >= 0 && index < items.count else {
                    throw EvaluationError("permute: index \(index) is out of range for a list of \(items.count)")
                }
                result.append(items[index])
            }
            return .list(result)
        }
        table.register("range", arity: 1...2, kinds: [.integer, .integer]) { arguments throws(EvaluationError) in
            // range(n) is 0..<n; range(start, end) is start..<end, empty when end <= start.
            if arguments.count == 2 {
                let start = try integerArgument("range", arguments, 0), end = try integerArgument("range", arguments, 1)
                let (length, overflow) = end.subtractingReportingOverflow(start)
                guard end <= start || (!overflow && length <= Self.maximumListLength) else {
                    throw EvaluationError.limit("range: \(start) to \(end) is longer than the limit of \(Self.maximumListLength)")
                }
                return .list(end <= start ? [] : (start..<end).map { .integer($0) })
            }
            let n = try integerArgument("range", arguments, 0)
            guard n >= 0 else { throw EvaluationError("range: the count \(n) is negative") }
            guard n <= Self.maximumListLength else { throw EvaluationError.limit("range: the count \(n) is more than the limit of \(Self.maximumListLength)") }
            return .list((0..<n).map { .integer($0) })
        }
        table.register("len", arity: 1...1, kinds: [.list]) { arguments throws(EvaluationError) in
            // A tensor's length is its element count: no list of its elements is made.
            if case .tensor(let array, _) = arguments[0] { return .integer(Int64(array.values.count)) }
            return .integer(Int64(try listArgument("len", arguments, 0).count))
        }
        // `a[i]`, `a[s:e]` (the parser writes them as these calls; a bound left out is `[none]`).
        table.register(Self.indexFunction, arity: 2...2) { arguments throws(EvaluationError) in
            try index(arguments[0], arguments[1])
        }
        table.register(Self.sliceFunction, arity: 3...3) { arguments throws(EvaluationError) in
            try sliceRange(arguments[0], arguments[1], arguments[2])
        }
        table.register(Self.missingBound, arity: 0...0) { _ throws(EvaluationError) in .absent }
        table.register("item", arity: 1...1) { arguments throws(EvaluationError) in
            // The one element of a tensor (or list) as a number: an integer for integer types,
            // a boolean for bool, a real otherwise.
            switch arguments[0] {
            case .integer, .real, .boolean: return arguments[0]
            case .list(let items):
                guard items.count == 1 else { throw EvaluationError("item: the list has \(items.count) items, not 1") }
                return items[0]
            case .tensor(let array, let type):
                guard array.values.count == 1 else { throw EvaluationError("item: the tensor has \(array.values.count) elements, not 1") }
                let value = array.values[0]
                if type == .bool { return .boolean(value != 0) }
                if let integers = array.integers, type.map({ !$0.isFloatingPoint }) ?? true { return .integer(integers[0]) }
                if let type, !type.isFloatingPoint, value.isFinite, value.rounded() == value, abs(value) < 0x1p63 { return .integer(Int64(value)) }
                return .real(value)
            default:
                throw EvaluationError("item takes a tensor of one element, not \(arguments[0].kind)")
            }
        }
        for name in ["all", "any"] {
            table.register(name, arity: 1...1) { arguments throws(EvaluationError) in
                // A boolean, a tensor (each element nonzero) or a list of booleans.
                let flags: [Bool]
                switch arguments[0] {
                case .boolean(let b): return .boolean(b)
                case .tensor(let array, _): flags = array.values.map { $0 != 0 }
                case .list(let items):
                    var collected: [Bool] = []
                    for item in items { collected.append(try item.asBoolean(for: "\(name)")) }
                    flags = collected
                default: throw EvaluationError("\(name) takes a boolean, a tensor or a list of booleans, not \(arguments[0].kind)")
                }
                return .boolean(name == "all" ? flags.allSatisfy { $0 } : flags.contains(true))
            }
        }
        for name in ["isclose", "allclose"] {
            // |a - b| <= atol + rtol × |b| element by element (numpy's defaults: rtol 1e-5, atol
            // 1e-8), in float64 after rounding to the tensors' element type; NaN is close to nothing.
            table.register(name, arity: 2...4, kinds: [.tensor, .tensor, .number, .number]) { arguments throws(EvaluationError) in
                let (a, typeA) = try tensorArgument(name, arguments, 0)
                let (b, typeB) = try tensorArgument(name, arguments, 1)
                let type = try combinedElementType(typeA, typeB)
                let rtol = arguments.count > 2 ? try realArgument(name, arguments, 2) : 1e-5
                let atol = arguments.count > 3 ? try realArgument(name, arguments, 3) : 1e-8
                guard rtol >= 0, atol >= 0 else { throw EvaluationError("\(name): rtol and atol must not be negative") }
                let left = type.map { t in a.map { roundReal($0, to: t) } } ?? a
                let right = type.map { t in b.map { roundReal($0, to: t) } } ?? b
                let close = try NDArray.elementwise(left, right) { x, y in
                    (x == y || Swift.abs(x - y) <= atol + rtol * Swift.abs(y)) ? 1 : 0
                }
                if name == "allclose" { return .boolean(close.values.allSatisfy { $0 != 0 }) }
                return .tensor(close, .bool)
            }
        }
        table.register("opset", arity: 0...1, kinds: [.string]) { arguments throws(EvaluationError) in
            throw EvaluationError("opset() needs a model: it is only available in rules")
        }
        for name in table.entries.keys { table.entries[name]!.isBuiltin = true }
        return table
    }()
}

extension FunctionTable {
    /// The function `a[i]` calls.
    static let indexFunction = "[]"
    /// The function `a[s:e]` calls.
    static let sliceFunction = "[:]"
    /// What stands for a bound left out of a slice (`a[1:]`).
    static let missingBound = "[none]"
}

/// `a[i]`: item `i` of a list (a negative `i` counts from the end), or the sub-tensor at `i`
/// along a tensor's first axis (a vector gives a tensor of rank 0, of the same element type).
private func index(_ container: EvalValue, _ position: EvalValue) throws(EvaluationError) -> EvalValue {
    guard case .integer(let i) = position else { throw EvaluationError("an index is an integer, not \(position.kind)") }
    func resolved(_ count: Int) throws(EvaluationError) -> Int {
        let r = i < 0 ? i + Int64(count) : i
        guard r >= 0 && r < Int64(count) else { throw EvaluationError("index \(i) is out of range for \(count) items") }
        return Int(r)
    }
    switch container {
    case .list(let items):
        return items[try resolved(items.count)]
    case .tensor(let array, let type):
        guard let first = array.shape.first else { throw EvaluationError("a tensor of rank 0 cannot be indexed") }
        let row = try resolved(first)
        let inner = Array(array.shape.dropFirst())
        // The array exists, so the count of its inner shape does not overflow.
        let size = NDArray.elementCount(inner) ?? 0
        return .tensor(array.elements((row * size)..<((row + 1) * size), shape: inner), type)
    default:
        throw EvaluationError("\(container.kind) cannot be indexed (a list or a tensor can)")
    }
}

/// `a[s:e]`: the items (or sub-tensors along the first axis) from `s` up to `e`, as in Python:
/// negative bounds count from the end, bounds past either end are clamped, and a bound left out
/// is the start or the end.
private func sliceRange(_ container: EvalValue, _ start: EvalValue, _ end: EvalValue) throws(EvaluationError) -> EvalValue {
    func bound(_ value: EvalValue, _ count: Int, default fallback: Int) throws(EvaluationError) -> Int {
        if case .absent = value { return fallback }
        guard case .integer(let b) = value else { throw EvaluationError("a slice bound is an integer, not \(value.kind)") }
        let r = b < 0 ? b + Int64(count) : b
        return Int(min(max(r, 0), Int64(count)))
    }
    switch container {
    case .list(let items):
        let s = try bound(start, items.count, default: 0), e = try bound(end, items.count, default: items.count)
        return .list(s < e ? Array(items[s..<e]) : [])
    case .tensor(let array, let type):
        guard let first = array.shape.first else { throw EvaluationError("a tensor of rank 0 cannot be sliced") }
        let s = try bound(start, first, default: 0), e = try bound(end, first, default: first)
        let rows = max(0, e - s)
        let size = NDArray.elementCount(Array(array.shape.dropFirst())) ?? 0
        return .tensor(array.elements((s * size)..<((s + rows) * size), shape: [rows] + array.shape.dropFirst()), type)
    default:
        throw EvaluationError("\(container.kind) cannot be sliced (a list or a tensor can)")
    }
}

/// Argument `index` of `function` as a tensor (numbers and lists of numbers are literals).
private func tensorArgument(_ function: String, _ arguments: [EvalValue], _ index: Int) throws(EvaluationError) -> (NDArray, DataType?) {
    switch arguments[index] {
    case .tensor, .integer, .real, .list:
        do throws(EvaluationError) {
            return try arguments[index].asTensor()
        } catch {
            throw EvaluationError("\(function): argument \(index + 1): \(error.message)")
        }
    default:
        throw EvaluationError("\(function): argument \(index + 1) must be a tensor, got \(arguments[index].kind)")
    }
}

/// Argument `index` of `function` as a list of integers.
private func integersArgument(_ function: String, _ arguments: [EvalValue], _ index: Int) throws(EvaluationError) -> [Int] {
    do throws(EvaluationError) {
        return try arguments[index].asIntegers()
    } catch {
        throw EvaluationError("\(function): argument \(index + 1): \(error.message)")
    }
}

/// Argument `index` of `function` as one number.
private func realArgument(_ function: String, _ arguments: [EvalValue], _ index: Int) throws(EvaluationError) -> Double {
    guard let number = arguments[index].numberValue else {
        throw EvaluationError("\(function): argument \(index + 1) must be a number, got \(arguments[index].kind)")
    }
    return number
}

/// Argument `index` of `function` as one integer.
private func integerArgument(_ function: String, _ arguments: [EvalValue], _ index: Int) throws(EvaluationError) -> Int64 {
    do throws(EvaluationError) {
        return try arguments[index].asInteger()
    } catch {
        throw EvaluationError("\(function): argument \(index + 1): \(error.message)")
    }
}

/// Argument `index` of `function` as a list (see `EvalValue.listItems`).
private func listArgument(_ function: String, _ arguments: [EvalValue], _ index: Int) throws(EvaluationError) -> [EvalValue] {
    guard let items = try arguments[index].listItems() else {
        throw EvaluationError("\(function): argument \(index + 1) must be a list, got \(arguments[index].kind)")
    }
    return items
}

extension EvalValue {
    /// The value read as a list: a list as it is, a tensor as the flat list of its elements
    /// (integers when it holds integers); nil for anything else. A list item takes several times
    /// the memory of a tensor element: a tensor longer than the longest list (see
    /// `EvaluationLimits.maximumListLength`) is refused.
    func listItems() throws(EvaluationError) -> [EvalValue]? {
        switch self {
        case .list(let items):
            return items
        case .tensor(let array, let type):
            let limit = EvaluationLimits.current.maximumListLength
            guard array.values.count <= limit else {
                throw EvaluationError.limit("a tensor of \(array.values.count) elements is read as a list, longer than the limit of \(limit)")
            }
            if let integers = array.integers, type.map({ !$0.isFloatingPoint }) ?? true { return integers.map { .integer($0) } }
            let integral = type.map { !$0.isFloatingPoint } ?? array.values.allSatisfy { $0 == $0.rounded() }
            return array.values.map { value in
                if integral, let integer = Int64(exactly: value) { return .integer(integer) }
                return .real(value)
            }
        default:
            return nil
        }
    }
}

/// A function of a `FunctionTable` looked up by name once (or found missing).
struct ResolvedFunction: Sendable {
    /// The name it was looked up by.
    let name: String
    let entry: FunctionTable.Entry?

    /// Whether it is the language's own function (see `FunctionTable.isBuiltin`).
    var isBuiltin: Bool { entry?.isBuiltin ?? false }

    /// Whether it sees the match (`FunctionTable.register(matchFunction:arity:kinds:_:)`).
    var seesMatch: Bool {
        guard case .seeingMatch = entry?.implementation else { return false }
        return true
    }

    /// Calls it with `arguments`; a missing function or a wrong argument count is an error.
    /// A function that sees the match gets `match` (nil outside a rule).
    func call(_ arguments: [EvalValue], match: MatchView? = nil) throws(EvaluationError) -> EvalValue {
        guard let entry else { throw EvaluationError("unknown function '\(name)'") }
        guard entry.arity.contains(arguments.count) else {
            let lower = entry.arity.lowerBound, upper = entry.arity.upperBound
            let expected = lower == upper ? "\(lower)" : upper == lower + 1 ? "\(lower) or \(upper)" : "\(lower) to \(upper)"
            let noun = upper == 1 ? "argument" : "arguments"
            throw EvaluationError("\(name) takes \(expected) \(noun), got \(arguments.count)")
        }
        switch entry.implementation {
        case .plain(let body): return try body(arguments)
        case .seeingMatch(let body): return try body(NativeFunctionCall(arguments: arguments, match: match))
        }
    }
}

/// A call of a native function that sees the match (`FunctionTable.MatchBody`).
public struct NativeFunctionCall {
    /// The evaluated arguments, already checked for count.
    public let arguments: [EvalValue]
    /// The match the rule is evaluated for, its variables by the names the rule file gives them;
    /// nil when the function is called outside a rule.
    public let match: MatchView?
}
