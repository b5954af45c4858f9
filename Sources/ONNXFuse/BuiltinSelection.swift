import Dispatch
import ONNXFuseIR
import ONNXFuseRules

extension RuleFiles {
    /// The built-in rules that can fire on `model`: the native rules, and those of the built-in
    /// files whose match the model's operators can meet. They rewrite `model` exactly as
    /// `builtin` does, and cost a fraction of it to make: compiling every built-in file is most
    /// of the command's start-up, and a model uses few of the rules.
    ///
    /// A rule is kept when, for one of its match blocks, every line that is not optional names
    /// an operator the model has (or `_`); rules anchored at initializers or imports are always
    /// kept. The operators that kept rules create count as the model's too, until nothing is
    /// added, so a rule that can fire only on another rule's result is kept as well.
    ///
    /// Explanations (`OptimizationOptions.explain`) need `builtin`: they say why a rule whose
    /// root operator is in the model did not fire, which a rule left out here cannot.
    ///
    /// `only` and `disabled` are the selection `optimize` will be given
    /// (`OptimizationOptions`). When it leaves none of the kept rules but some other built-in
    /// one, all of `builtin` is returned: `optimize` leaves a model alone when no rule runs, and
    /// makes its pass when one does, even one that cannot fire (importing the nodes' domains).
    public static func builtin(for model: Model, only: Set<String>? = nil, disabled: Set<String> = []) -> [CompiledRule] {
        let files = builtinSyntax
        let kept = keptRules(files.map(\.rules), operators: operators(of: model))
        func runs(_ name: String) -> Bool { (only?.contains(name) ?? true) && !disabled.contains(name) }
        if only != nil || !disabled.isEmpty,
           !keptNames(files, kept).contains(where: runs), builtinNames.contains(where: runs) {
            return builtin
        }
        return compileBuiltin(zip(files, kept).map { file, kept in
            var file = file
            file.rules = zip(file.rules, kept).filter(\.1).map(\.0)
            return file
        })
    }

    /// The native rules, then those of `files` (built-in files, or some of their rules),
    /// compiled side by side on the machine's cores. The built-in files are tested to compile,
    /// so a failure here is a bug in the build.
    static func compileBuiltin(_ files: [RuleFileSyntax]) -> [CompiledRule] {
        let compiled = Slots<[CompiledRule]>(count: files.count)
        DispatchQueue.concurrentPerform(iterations: files.count) { index in
            guard !files[index].rules.isEmpty else { return }
            do {
                // Kept to the end of the process by `builtin` (see `withoutLeakDetection`).
                compiled.store(try withoutLeakDetection { () throws(RuleErrors) in try compileRules(files[index]) }, at: index)
            } catch {
                preconditionFailure("the built-in rule file \(files[index].file) does not compile: \(error)")
            }
        }
        return NativeRules.all + compiled.elements.flatMap { $0 ?? [] }
    }

    /// The names of the rules `builtin(for: model)` compiles, without compiling any.
    public static func builtinNames(for model: Model) -> [String] {
        let files = builtinSyntax
        return keptNames(files, keptRules(files.map(\.rules), operators: operators(of: model)))
    }

    /// The native rules' names and those of the rules of `files` that `kept` keeps.
    private static func keptNames(_ files: [RuleFileSyntax], _ kept: [[Bool]]) -> [String] {
        NativeRules.all.map(\.name) + zip(files, kept).flatMap { file, kept in zip(file.rules, kept).filter(\.1).map(\.0.name) }
    }

    /// The operators of every graph of `model`.
    static func operators(of model: Model) -> Set<OperatorKey> {
        var operators = Set<OperatorKey>()
        for graph in model.allGraphs {
            for node in graph.nodes { operators.insert(OperatorKey(domain: node.domain, opType: node.opType)) }
        }
        return operators
    }

    /// The names of every built-in rule, the native ones first, without compiling any.
    public static var builtinNames: [String] {
        NativeRules.all.map(\.name) + builtinSyntax.flatMap { $0.rules.map(\.name) }
    }

    /// The built-in files, parsed once (side by side on the machine's cores).
    static let builtinSyntax: [RuleFileSyntax] = {
        let parsed = Slots<RuleFileSyntax>(count: builtinFiles.count)
        DispatchQueue.concurrentPerform(iterations: builtinFiles.count) { index in
            let file = builtinFiles[index]
            // Kept to the end of the process (see `withoutLeakDetection`).
            let (syntax, errors) = withoutLeakDetection { parseRulesCollectingErrors(file.text, file: "builtin:" + file.name) }
            precondition(errors.isEmpty, "the built-in rule file \(file.name) does not parse: \(errors)")
            parsed.store(syntax, at: index)
        }
        return parsed.elements.map { $0! }
    }()

    /// For each file, for each of its rules, whether the rule can fire on a model with
    /// `operators` (see `builtin(for:)`).
    static func keptRules(_ files: [[RuleSyntax]], operators: Set<OperatorKey>) -> [[Bool]] {
        var operators = operators
        var kept = files.map { [Bool](repeating: false, count: $0.count) }
        var changed = true
        while changed {
            changed = false
            for (f, rules) in files.enumerated() {
                for (r, rule) in rules.enumerated() where !kept[f][r] && canMatch(rule, operators) {
                    kept[f][r] = true
                    changed = true
                    for case .node(let node) in rule.replacements {
                        operators.insert(OperatorKey(domain: node.domain, opType: node.opType))
                    }
                }
            }
        }
        return kept
    }

    /// Whether some match block of `rule` has, on each line that is not optional, an
    /// alternative among `operators` or `_` (any operator).
    static func canMatch(_ rule: RuleSyntax, _ operators: Set<OperatorKey>) -> Bool {
        if !rule.items.isEmpty { return true }
        return rule.matchBlocks.contains { block in
            block.lines.allSatisfy { line in
                line.isOptional || line.alternatives.contains { node in
                    node.opType == "_" || operators.contains(OperatorKey(domain: node.domain, opType: node.opType))
                }
            }
        }
    }

    /// An operator: its domain ("" for the default one, however written) and type.
    struct OperatorKey: Hashable {
        let domain: String
        let opType: String

        init(domain: String?, opType: String) {
            self.domain = domain == nil || domain == "ai.onnx" ? "" : domain!
            self.opType = opType
        }
    }

    /// Results of workers of `concurrentPerform`, one slot each: each writes its own slot, and
    /// the slots are read only after `concurrentPerform` has returned (which orders every write
    /// before the read), hence the unchecked `Sendable`.
    final class Slots<Element>: @unchecked Sendable {
        private let slots: UnsafeMutableBufferPointer<Element?>
        init(count: Int) {
            slots = .allocate(capacity: count)
            slots.initialize(repeating: nil)
        }
        deinit {
            slots.deinitialize()
            slots.deallocate()
        }
        func store(_ element: Element, at index: Int) { slots[index] = element }
        var elements: [Element?] { Array(slots) }
    }
}
