import ONNXFuseIR
import ONNXFuseOps
import ONNXFuseRewrite

/// The `where` and `compute` blocks of one rule, run for a match: the guards in order, then
/// the computations, in float64, each tensor rounded once to its element type at the end.
/// Immutable: a class, so that each match's `Scope` holds a reference rather than a copy.
final class RuleProgram: @unchecked Sendable {
    let rule: RuleSyntax
    let valueVariables: [String: Int]
    let attributeVariables: [String: Int]
    let computedSlots: [String: Int]
    let attributeSlotExpressions: [Expression]
    /// The attribute each slot sets (`attributeSlotExpressions`, same order).
    let attributeSlotTargets: [AttributeTarget]
    let functions: FunctionTable
    /// The computed slots that replacement nodes read.
    let readSlots: Set<Int>
    /// What the match becomes, for the schema check of the new nodes (`newNodeProblem`).
    let replacement: ONNXFuseRewrite.Replacement?
    /// Where each node of `replacement` is written.
    let replacementLocations: [SourceLocation]
    /// The schemas of `replacement`'s nodes, looked up once per opset version.
    let replacementSchemas = ReplacementSchemas()

    /// The value and attribute variables' names by index, for native functions' `MatchView`.
    let valueNames: [String]
    let attributeNames: [String]

    /// The `where` conditions, one conjunct at a time, in order.
    let conditions: [Expression]
    /// Per `compute` assignment: whether a streamed evaluation may give its value
    /// (`evaluateStreaming`): a node reads it, and no later assignment or attribute does.
    let streamable: [Bool]

    /// `conditions`, lowered (what a match evaluates).
    let loweredConditions: [LoweredExpression]
    /// Each `compute` assignment's slot in `Scope.computed` (its `computedSlots` entry) and its
    /// value, lowered.
    let loweredComputes: [(slot: Int, value: LoweredExpression)]
    /// Per `compute` assignment: the value variables a streamed evaluation of it may stream
    /// (`Scope.streamCandidates`; empty when it is not `streamable`).
    let streamCandidates: [[Int]]
    /// `attributeSlotExpressions`, lowered.
    let loweredAttributeExpressions: [LoweredExpression]
    /// How many slots `Scope.computed` has.
    let computedSlotCount: Int
    /// Per `compute` assignment: at most how many entries its tape gets (`Scope.tape`), to
    /// size it once.
    let tapeCapacities: [Int]

    init(rule: RuleSyntax, valueVariables: [String: Int], attributeVariables: [String: Int], computedSlots: [String: Int],
         attributeSlotExpressions: [Expression], attributeSlotTargets: [AttributeTarget], functions: FunctionTable, readSlots: Set<Int>,
         replacement: ONNXFuseRewrite.Replacement? = nil, replacementLocations: [SourceLocation] = []) {
        self.rule = rule
        self.replacement = replacement
        self.replacementLocations = replacementLocations
        self.valueVariables = valueVariables
        self.attributeVariables = attributeVariables
        func names(_ variables: [String: Int]) -> [String] {
            var names = repeated("", count: (variables.values.max() ?? -1) + 1)
            for (name, index) in variables { names[index] = name }
            return names
        }
        valueNames = names(valueVariables)
        attributeNames = names(attributeVariables)
        self.computedSlots = computedSlots
        self.attributeSlotExpressions = attributeSlotExpressions
        self.attributeSlotTargets = attributeSlotTargets
        self.functions = functions
        self.readSlots = readSlots
        conditions = rule.guards.flatMap(\.conjuncts)
        streamable = rule.computes.indices.map { position in
            let name = rule.computes[position].name
            guard let slot = computedSlots[name], readSlots.contains(slot) else { return false }
            let later = rule.computes[(position + 1)...].map(\.value) + attributeSlotExpressions
            return !later.contains { $0.referencedNames.contains(name) }
        }
        func lower(_ expression: Expression) -> LoweredExpression {
            Self.lower(expression, valueVariables: valueVariables, attributeVariables: attributeVariables,
                       computeSlots: computedSlots, functions: functions)
        }
        loweredConditions = conditions.map(lower)
        loweredComputes = rule.computes.map { (computedSlots[$0.name]!, lower($0.value)) }
        streamCandidates = zip(streamable, loweredComputes).map { $0 ? Scope.streamCandidates($1.value) : [] }
        loweredAttributeExpressions = attributeSlotExpressions.map(lower)
        computedSlotCount = (computedSlots.values.max() ?? -1) + 1
        tapeCapacities = loweredComputes.map { $0.value.tapeEntryBound }
    }

    /// Condition `index` alone, on a match that binds what it reads: nil when it holds, else the
    /// refusal `prepare` gives for it.
    func check(_ index: Int, _ match: Match, _ context: RewriteContext) -> RuleRefusal? {
        var scope = Scope(program: self, match: match, context: context)
        return check(index, &scope)
    }

    private func check(_ index: Int, _ scope: inout Scope) -> RuleRefusal? {
        let condition = conditions[index]
        var refusal: RuleRefusal
        do {
            scope.why = nil
            let value = try scope.evaluate(loweredConditions[index])
            let holds: Bool
            switch value {
            case .boolean(let flag): holds = flag
            // An elementwise comparison holds when every element does.
            case .tensor(let array, .bool): holds = array.values.allSatisfy { $0 != 0 }
            default: return RuleRefusal("`\(condition)` is \(value.kind), not a boolean")
            }
            if holds { return nil }
            // `constant(w)` says which value is not; a compound condition is shown whole (its
            // last call's reason may belong to a part that did not decide).
            if loweredConditions[index].isCall, let why = scope.why {
                refusal = RuleRefusal(why)
            } else {
                refusal = RuleRefusal("`\(condition)` is false")
            }
        } catch {
            if error.exceedsLimit { return .ruleError("\(condition.location): \(error.message)") }
            refusal = RuleRefusal(error.message)
        }
        refusal.ruleLine = Self.line(condition.location)
        return refusal
    }

    /// `file:line`, as explanations show a rule's line.
    static func line(_ location: SourceLocation) -> String { "\(location.file):\(location.line)" }

    /// A refusal by the rule's line at `location`.
    static func refusal(_ text: String, at location: SourceLocation) -> RuleRefusal {
        var refusal = RuleRefusal(text)
        refusal.ruleLine = line(location)
        return refusal
    }

    func prepare(_ match: Match, _ context: RewriteContext) -> Result<PreparedReplacement, RuleRefusal> {
        var scope = Scope(program: self, match: match, context: context)
        // Each `where` line, one conjunct at a time, so a refusal names the condition that failed.
        for index in conditions.indices {
            if var refusal = check(index, &scope) {
                refusal.failedCheck = index
                return .failure(refusal)
            }
        }
        var tensors: [Tensor] = []
        tensors.reserveCapacity(rule.computes.count)
        // What each assignment reads from the graph, for tensors computed again at the save.
        var tapes: [[TapeEntry]] = []
        tapes.reserveCapacity(rule.computes.count)
        scope.recording = true
        for (position, assignment) in rule.computes.enumerated() {
            scope.tape = []
            scope.tape.reserveCapacity(tapeCapacities[position])
            defer { tapes.append(scope.tape) }
            // A refusal here names the compute line.
            func refused(_ text: String) -> Result<PreparedReplacement, RuleRefusal> {
                .failure(Self.refusal(text, at: assignment.location))
            }
            do {
                let value: EvalValue
                let (slot, lowered) = loweredComputes[position]
                let streams = streamable[position] && scope.mayStream(streamCandidates[position])
                switch streams ? try scope.evaluateStreaming(lowered) : .value(try scope.evaluate(lowered)) {
                case .value(let evaluated):
                    value = evaluated
                case .streamed(let streamed):
                    switch try prepareStreamed(streamed, assignment, position, match, tapes + [scope.tape]) {
                    case .success(let tensor): tensors.append(tensor)
                    case .failure(let refusal): return .failure(refusal)
                    }
                    continue
                }
                scope.computed[slot] = value
                var tensorValue = value
                if case .integer = value { tensorValue = .tensor(try value.asTensor().0, .int64) }
                if case .list(let items) = value, items.allSatisfy({ if case .integer = $0 { return true }; return false }) {
                    // A list of integers read by a node is an int64 tensor (a Reshape shape, axes).
                    tensorValue = .tensor(try value.asTensor().0, .int64)
                }
                guard case .tensor(let array, let type) = tensorValue else {
                    if readSlots.contains(slot) {
                        return refused("\(assignment.name) is \(value.kind), which a node cannot read")
                    }
                    // Not a tensor: usable in later computations only.
                    tensors.append(Tensor(dataType: .float, dims: [0], storage: .none))
                    continue
                }
                // A non-finite value stops the rule where it first appears (k, not the w2 made from it).
                guard array.isFinite else { return refused("\(assignment.name) is not finite") }
                // Only what a node reads becomes a tensor of the model; intermediates stay float64.
                guard readSlots.contains(slot) else {
                    tensors.append(Tensor(dataType: .float, dims: [0], storage: .none))
                    continue
                }
                guard let type else {
                    return refused("\(assignment.name) has no element type (it is computed from literals only)")
                }
                // Rounding to the stored type can overflow what was finite in float64 (3e38 × 2
                // as float, 60000 × 2 as float16).
                guard array.isFinite(storedAs: type) else {
                    return refused("\(assignment.name) is not finite once stored as \(type) (an element overflows it)")
                }
                if NDArray.isWritable(type), let bytes = type.rawByteCount(elements: array.count),
                   bytes >= EvaluationLimits.current.minimumDeferredBytes, case let read = tapes + [scope.tape],
                   let depth = Self.deferredDepth(reading: read) {
                    // A large weight is computed again when written, not kept from now to the save.
                    let replay = ComputeReplay(program: self, match: match.keepingAttributesOnly(), tapes: read, target: position, dataType: type)
                    let deferred = DeferredBytes(count: bytes, samples: try array.sampledBytes(as: type), depth: depth,
                                                 producingInPieces: { emit in try replay.fill(emit) })
                    tensors.append(Tensor(dataType: type, dims: array.shape.map { Int64($0) }, storage: .raw(TensorBytes(deferred: deferred))))
                    continue
                }
                tensors.append(try array.tensor(as: type))
            } catch {
                if error.exceedsLimit { return .failure(.ruleError("\(assignment.value.location): \(assignment.name): \(error.message)")) }
                return refused("\(assignment.name): \(error.message)")
            }
        }
        scope.recording = false
        var attributes: [AttributeValue] = []
        for (position, target) in attributeSlotTargets.enumerated() {
            let expression = attributeSlotExpressions[position]
            do {
                let value = try scope.evaluate(loweredAttributeExpressions[position])
                // Typed as the operator's schema declares it at the model's opset (a FLOAT
                // epsilon from a one-element tensor); an operator without a schema takes the
                // value's own type.
                if let version = context.opsetVersion(target.domain),
                   let schema = OperatorSchemas.schema(target.opType, domain: target.domain, version: version) {
                    guard let declared = schema.attributes.first(where: { $0.name == target.name }) else {
                        return .failure(Self.refusal("\(target.opType) has no attribute '\(target.name)' at opset \(version)", at: expression.location))
                    }
                    attributes.append(try target.value(of: value, as: declared.type, expression: expression))
                } else {
                    attributes.append(try attributeValue(of: value))
                }
            } catch {
                if error.exceedsLimit { return .failure(.ruleError("\(expression.location): \(error.message)")) }
                return .failure(Self.refusal(error.message, at: expression.location))
            }
        }
        if let refusal = newNodeProblem(match, tensors, attributes, context) { return .failure(refusal) }
        return .success(PreparedReplacement(tensors: tensors, attributeValues: attributes))
    }

    /// A streamed assignment's tensor (`evaluateStreaming`), checked as `prepare` checks a whole
    /// one, in one pass over its chunks (finite in float64, then once stored), and deferred; or
    /// the refusal. Only what is large enough to be deferred is streamed.
    private func prepareStreamed(_ streamed: StreamedTensor, _ assignment: Assignment, _ position: Int,
                                 _ match: Match, _ tapes: [[TapeEntry]]) throws(EvaluationError) -> Result<Tensor, RuleRefusal> {
        func refused(_ text: String) -> Result<Tensor, RuleRefusal> { .failure(Self.refusal(text, at: assignment.location)) }
        let type = streamed.source.dataType
        let sampled = try NDArray.sampledElements(count: streamed.count, as: type)
        var samples = sampled.map { [Double](repeating: 0, count: $0.count) }
        var finite = true
        var finiteStored = true
        // Most weights are shown finite by their largest magnitude: then only the samples are
        // computed, and the result is made once, at the save.
        let provablyFinite = try streamed.provablyFinite()
        try streamed.forEachChunk(in: provablyFinite ? sampled : nil) { start, chunk in
            if !provablyFinite {
                finite = finite && NDArray.allFinite(chunk)
                finiteStored = finiteStored && NDArray.allFinite(chunk, storedAs: type)
            }
            let chunkRange = start..<(start + chunk.count)
            for (index, range) in sampled.enumerated() where range.overlaps(chunkRange) {
                let common = range.clamped(to: chunkRange)
                for element in common { samples[index][element - range.lowerBound] = chunk[element - start] }
            }
        }
        guard finite else { return refused("\(assignment.name) is not finite") }
        guard finiteStored else { return refused("\(assignment.name) is not finite once stored as \(type) (an element overflows it)") }
        let bytes = type.rawByteCount(elements: streamed.count)!
        let dims = streamed.shape.map { Int64($0) }
        guard bytes >= EvaluationLimits.current.minimumDeferredBytes, let depth = Self.deferredDepth(reading: tapes) else {
            // Kept: written a chunk at a time into its own bytes.
            let size = bytes / max(streamed.count, 1)
            let kept: TensorBytes
            do {
                kept = try TensorBytes(count: bytes) { buffer in
                    try streamed.forEachChunk { start, chunk in NDArray.store(chunk, as: type, into: buffer.baseAddress! + start * size) }
                }
            } catch let error as EvaluationError {
                throw error
            } catch {
                throw EvaluationError("\(assignment.name): \(error)")
            }
            return .success(Tensor(dataType: type, dims: dims, storage: .raw(kept)))
        }
        let replay = ComputeReplay(program: self, match: match.keepingAttributesOnly(), tapes: tapes, target: position, dataType: type)
        let deferred = DeferredBytes(count: bytes, samples: NDArray.sampledBytes(count: streamed.count, as: type, samples), depth: depth,
                                     producingInPieces: { emit in try replay.fill(emit) })
        return .success(Tensor(dataType: type, dims: dims, storage: .raw(TensorBytes(deferred: deferred))))
    }

    /// The depth of a deferred tensor computed from what `tapes` read (`DeferredBytes.depth`);
    /// nil when it would be deeper than `EvaluationLimits.maximumDeferredDepth`, and is kept.
    static func deferredDepth(reading tapes: [[TapeEntry]]) -> Int? {
        var deepest = 0
        for tape in tapes {
            for case .tensor(let box) in tape {
                guard case .raw(let bytes) = box.value.storage, let computation = bytes.deferred, !computation.isResident else { continue }
                deepest = max(deepest, computation.depth)
            }
        }
        return deepest < EvaluationLimits.current.maximumDeferredDepth ? deepest + 1 : nil
    }

    /// Why a node the replacement would create is one its operator's schema (at the model's
    /// opset) rejects, checked before anything changes, so that the rewrite is refused rather
    /// than the model spoiled: a required input left absent (an optional input of the match, or
    /// a variable another form binds), an element type the operator does not take (a bool tensor
    /// from `k < 0.5`), an attribute of the wrong type. Values of unknown type and operators
    /// without a known schema are not judged (the check after the run still is).
    func newNodeProblem(_ match: Match, _ tensors: [Tensor], _ attributes: [AttributeValue], _ context: RewriteContext) -> RuleRefusal? {
        guard let replacement else { return nil }
        // Most matches make nodes like ones that conformed before (`NewNodeFacts`): then no node
        // is made. Otherwise every node is checked, as below.
        if replacement.nodes.indices.allSatisfy({ index in
            knownToConform(index, replacement.nodes[index], match, tensors, attributes, context)
        }) {
            return nil
        }
        // Stand-ins for values that do not exist yet: computed tensors (their type is known) and
        // the outputs of earlier new nodes (detached values of unknown type).
        // A few stand-ins: a list searched by identity, not a dictionary.
        var known: [(value: Value, type: DataType)] = []
        known.reserveCapacity(tensors.count)
        var fresh: [Int: Value] = [:]
        func standIn(_ type: DataType?) -> Value {
            let value = Value.detached(name: "v")
            if let type { known.append((value, type)) }
            return value
        }
        func resolve(_ reference: ValueReference) -> Value? {
            switch reference {
            case .bound(let v): return match.value(v)
            case .computed(let slot): return standIn(slot < tensors.count ? tensors[slot].dataType : nil)
            case .fresh(let f): return fresh[f] ?? standIn(nil)
            case .absent: return nil
            }
        }
        let elementType = { (value: Value) in
            known.first { $0.value === value }?.type ?? value.inferred?.elementType ?? value.type?.elementType
        }
        for (index, spec) in replacement.nodes.enumerated() {
            guard let version = judgedVersion(spec, match, context) else { continue }
            let node = replacement.makeNode(index, for: match, attributeValues: attributes, name: nil, resolve: resolve) { output in
                if case .none = output { return nil }
                return "out"
            }
            for (position, output) in spec.outputs.enumerated() {
                if case .fresh(let f) = output { fresh[f] = node.outputs[position] }
            }
            let schema = replacementSchemas.schema(of: index, spec, version: version)
            guard let problem = OperatorSchemas.problem(of: node, schema: schema, version: version, elementType: elementType) else {
                replacementSchemas.remember(NewNodeFacts.of(spec, match, tensors, attributes), conforming: index, version: version)
                continue
            }
            // What a matched node of that operator breaks already (a bfloat16 Conv where the
            // opset has none) is the model's, not the rule's: the rewrite keeps it as it was.
            if match.matchedNodes.contains(where: { $0.opType == spec.opType
                && OperatorSchemas.problem(of: $0, version: version, elementType: elementType) != nil }) {
                continue
            }
            var refusal = RuleRefusal("the new \(spec.opType) would be invalid: \(problem)")
            if index < replacementLocations.count { refusal.ruleLine = Self.line(replacementLocations[index]) }
            return refusal
        }
        return nil
    }

    /// Whether replacement node `index` (`spec`), made for `match`, is one `newNodeProblem` would
    /// pass without making it: one it does not judge, or one with the facts of a node that
    /// conformed at the model's opset version (`ReplacementSchemas.conforming`).
    private func knownToConform(_ index: Int, _ spec: ReplacementNode, _ match: Match, _ tensors: [Tensor],
                                _ attributes: [AttributeValue], _ context: RewriteContext) -> Bool {
        guard let version = judgedVersion(spec, match, context) else { return true }
        return replacementSchemas.conforming(index, version: version).contains { NewNodeFacts.same($0, spec, match, tensors, attributes) }
    }

    /// The opset version at which `newNodeProblem` judges replacement node `spec` made for
    /// `match`; nil when it does not (its domain is not imported, or it copies subgraphs, which
    /// it would adopt).
    private func judgedVersion(_ spec: ReplacementNode, _ match: Match, _ context: RewriteContext) -> Int64? {
        let copiesSubgraphs = spec.attributes.contains { entry in
            guard case .copyAll(let source) = entry else { return false }
            return match.nodes[source]!.attributes.contains(where: \.hasSubgraphs)
        }
        return copiesSubgraphs ? nil : context.opsetVersion(spec.domain)
    }

    /// The attribute value that an expression's result becomes.
    func attributeValue(of value: EvalValue) throws(EvaluationError) -> AttributeValue {
        switch value {
        case .integer(let i): return .int(i)
        case .real(let r): return .float(Float(r))
        case .boolean(let b): return .int(b ? 1 : 0)
        case .string(let s): return .string(Array(s.utf8))
        case .list(let items):
            if items.allSatisfy({ if case .integer = $0 { return true }; return false }) {
                return .ints(try items.map { v throws(EvaluationError) in try v.asInteger() })
            }
            return .floats(try items.map { v throws(EvaluationError) in
                guard let number = v.numberValue else { throw EvaluationError("a list attribute holds \(v.kind)") }
                return Float(number)
            })
        case .tensor(let array, let type):
            return .tensor(try array.tensor(as: type ?? .float))
        case .dataType(let type): return .int(Int64(type.rawValue))
        case .symbol(let name): throw EvaluationError("an attribute cannot be set to the symbolic dimension \(name)")
        case .absent: throw EvaluationError("an attribute cannot be set to nothing")
        }
    }

    /// Names and their values while one match is evaluated.
    struct Scope {
        let program: RuleProgram
        let match: Match
        let context: RewriteContext
        /// The values of the `compute` assignments so far, by slot (`RuleProgram.computedSlots`).
        var computed: [EvalValue?]
        /// Why the last `constant(...)` (or similar) check was false, for explanations.
        var why: String?
        /// The elements created so far for this match (`EvaluationLimits.maximumWorkPerApplication`).
        var work = 0
        let workLimit = EvaluationLimits.current.maximumWorkPerApplication
        /// The multiply-adds of this match's `matmul`s so far (`EvaluationLimits.maximumMatmulWork`).
        var matmulWork = 0
        /// Whether what the graph gives (constants, graph functions, opsets) goes on `tape`.
        var recording = false
        /// What the current assignment read from the graph, in order.
        var tape: [TapeEntry] = []
        /// Whether the graph's answers come from `tape` instead (a computation run again).
        var replaying = false
        /// The next entry of `tape` to replay.
        var cursor = 0

        init(program: RuleProgram, match: Match, context: RewriteContext) {
            self.program = program
            self.match = match
            self.context = context
            computed = repeated(nil, count: program.computedSlotCount)
        }

        /// The graph value of value variable `index`: nil when absent (an optional input the
        /// node lacks, or a variable only another form of the rule binds).
        func graphValue(_ index: Int) -> Value? { match.values[index] ?? nil }

        /// Why `value` (named `name`) is not a constant.
        func notConstantReason(_ variable: String, _ value: Value) -> String {
            let name = variableLabel(variable, value)
            switch value.definition {
            case .graphInput:
                return value.hasInitializer ? "\(name) is an initializer that is also a graph input" : "\(name) is a graph input"
            case .nodeOutput:
                return "\(name) is produced by \(value.producer?.opType ?? "a node"), not a constant"
            default:
                return "\(name) is not a constant"
            }
        }

        /// The value of `expression`, its work counted: one, plus the elements of the result of
        /// an operation or a call (a name's value exists already).
        mutating func evaluate(_ expression: LoweredExpression) throws(EvaluationError) -> EvalValue {
            let value = try evaluateUncounted(expression)
            try charge(expression, elements: value.elementCount)
            return value
        }

        /// Counts the work of `expression`, whose value has `elements` elements (see `evaluate`),
        /// and checks the limit.
        mutating func charge(_ expression: LoweredExpression, elements: Int) throws(EvaluationError) {
            work += expression.makesValue ? 1 + elements : 1
            guard work <= workLimit else {
                throw EvaluationError.limit("the rule created more than \(workLimit) elements for one match (the results of its operations and calls), the limit")
            }
        }

        private mutating func evaluateUncounted(_ expression: LoweredExpression) throws(EvaluationError) -> EvalValue {
            switch expression {
            case .literal(let value):
                return value
            case .list(let items):
                var values: [EvalValue] = []
                values.reserveCapacity(items.count)
                for item in items { values.append(try evaluate(item)) }
                return .list(values)
            case .valueVariable(let index, let name):
                return try lookupValue(index, name)
            case .attributeVariable(let index, _):
                guard let value = match.attributes[index] else { return .absent }
                return try evalValue(of: value)
            case .computed(let slot, let name):
                if let value = computed[slot] { return value }
                if let type = DataType(name: name) { return .dataType(type) }
                throw EvaluationError("'\(name)' is not defined")
            case .dataType(let type):
                return .dataType(type)
            case .undefined(let name):
                throw EvaluationError("'\(name)' is not defined")
            case .unary(let op, let operand):
                return try applyUnary(op.rawValue, try evaluate(operand))
            case .binary(.and, let lhs, let rhs):
                guard try evaluate(lhs).asBoolean(for: "&&") else { return .boolean(false) }
                return .boolean(try evaluate(rhs).asBoolean(for: "&&"))
            case .binary(.or, let lhs, let rhs):
                if try evaluate(lhs).asBoolean(for: "||") { return .boolean(true) }
                return .boolean(try evaluate(rhs).asBoolean(for: "||"))
            case .binary(let op, let lhs, let rhs):
                let left = try evaluate(lhs)
                return try apply(op, left, try evaluate(rhs))
            case .graphCall(let name, let named, let arguments):
                if replaying { return try replayed().value }
                // What the call evaluates inside is not recorded: a replay skips the call.
                let wasRecording = recording
                recording = false
                defer { recording = wasRecording }
                let value = try callGraphFunction(name, named, arguments)
                if wasRecording { tape.append(.value(value)) }
                return value
            case .opset(let arguments):
                var values: [EvalValue] = []
                for argument in arguments { values.append(try evaluate(argument)) }
                if replaying { return try replayed().value }
                let value = try opset(values)
                if recording { tape.append(.value(value)) }
                return value
            case .call(let function, let arguments):
                var values: [EvalValue] = []
                values.reserveCapacity(arguments.count)
                for argument in arguments { values.append(try evaluate(argument)) }
                if function.name == "matmul", values.count == 2, case .tensor(let left, _) = values[0], case .tensor(let right, _) = values[1],
                   let work = NDArray.matmulWork(left.shape, right.shape) {
                    // All the matmuls of one match share the limit: checked before the work.
                    let (total, overflow) = matmulWork.addingReportingOverflow(work)
                    let limit = EvaluationLimits.current.maximumMatmulWork
                    guard !overflow, total <= limit else {
                        throw EvaluationError.limit("the rule's matmuls did more than \(limit) multiply-adds for one match, the limit")
                    }
                    matmulWork = total
                }
                guard function.seesMatch else { return try function.call(values) }
                // Its answer depends on the graph: recorded, and replayed when made again.
                if replaying { return try replayed().value }
                let view = MatchView(match: match, valueNames: program.valueNames, attributeNames: program.attributeNames,
                                     context: context)
                let value = try function.call(values, match: view)
                if recording { tape.append(.value(value)) }
                return value
            }
        }

        /// A constant's elements in float64.
        static func read(_ tensor: Tensor) throws(EvaluationError) -> NDArray {
            guard case .raw(let bytes) = tensor.storage else { return try NDArray(tensor: tensor) }
            if let computation = bytes.deferred, !computation.isResident {
                // Another rewrite's deferred tensor (folds in a chain): made for this read only,
                // not kept (it may leave the graph, and the save makes it again if not).
                var copy = tensor
                do {
                    return try bytes.withTransientBytes { buffer in
                        copy.storage = .raw(TensorBytes(owner: nil, baseAddress: buffer.baseAddress, count: buffer.count))
                        return try NDArray(tensor: copy)
                    }
                } catch let error as EvaluationError {
                    throw error
                } catch {
                    throw EvaluationError("\(tensor.name.map { "tensor '\($0)'" } ?? "a computed tensor") could not be made: \(error)")
                }
            }
            return try NDArray(tensor: tensor)
        }

        /// The next recorded answer of the graph, when replaying.
        mutating func replayed() throws(EvaluationError) -> TapeEntry {
            guard cursor < tape.count else { throw EvaluationError("a computation run again read more than it did the first time") }
            cursor += 1
            return tape[cursor - 1]
        }

        /// `opset()` and `opset(domain)`: the model's imported version of the default domain or
        /// of `domain` ("" and "ai.onnx" are the default one); a domain the model does not import
        /// makes the rule not fire.
        func opset(_ arguments: [EvalValue]) throws(EvaluationError) -> EvalValue {
            guard arguments.count <= 1 else { throw EvaluationError("opset takes 0 or 1 arguments, got \(arguments.count)") }
            var domain = ""
            if let argument = arguments.first {
                guard case .string(let text) = argument else {
                    throw EvaluationError("opset: argument 1 must be a string (a domain), got \(argument.kind)")
                }
                domain = text
            }
            guard let version = context.opsetVersion(domain) else {
                throw EvaluationError("the model does not import the operator set \(domain.isEmpty ? "of the default domain" : "'\(domain)'")")
            }
            return .integer(version)
        }

        /// The constant value variable `index` (named `name`) is bound to, in float64; absent
        /// when the variable is; an error when it is not a constant.
        mutating func lookupValue(_ index: Int, _ name: String) throws(EvaluationError) -> EvalValue {
            if replaying {
                switch try replayed() {
                case .tensor(let box): return .tensor(try Self.read(box.value), box.value.dataType)
                case .value(let value): return value
                }
            }
            guard let value = graphValue(index) else {
                if recording { tape.append(.value(.absent)) }
                return .absent
            }
            // The initializer's own box: read in place and kept on the tape, never copied.
            guard let box = value.constantTensorBox(freezeInitializerInputs: context.freezeInitializerInputs) else {
                throw EvaluationError(notConstantReason(name, value))
            }
            let array = try Self.read(box.value)
            if recording { tape.append(.tensor(box)) }
            return .tensor(array, box.value.dataType)
        }

        func evalValue(of attribute: AttributeValue) throws(EvaluationError) -> EvalValue {
            switch attribute {
            case .int(let i): return .integer(i)
            case .float(let f): return .real(Double(f))
            case .string(let s): return .string(String(decoding: s, as: UTF8.self))
            case .ints(let i): return .list(i.map { .integer($0) })
            case .floats(let f): return .list(f.map { .real(Double($0)) })
            case .strings(let s): return .list(s.map { .string(String(decoding: $0, as: UTF8.self)) })
            case .tensor(let t): return .tensor(try NDArray(tensor: t), t.dataType)
            default: throw EvaluationError("attributes of this kind cannot be computed with")
            }
        }

        /// The dimensions of `name`'s value: a constant's dims, else what shape inference found,
        /// else its declared shape. Symbols stay symbols; an error when even the rank is unknown.
        func dimensions(_ name: String, _ value: Value) throws(EvaluationError) -> [Dimension] {
            if let dims = constantDims(value) { return dims.map { .value($0) } }
            return try dimensionsOfNonConstant(name, value)
        }

        /// A constant's dims, read in place (the graph functions answer from them without
        /// making `Dimension`s); nil when `value` is not a constant.
        func constantDims(_ value: Value) -> [Int64]? {
            value.constantDims(freezeInitializerInputs: context.freezeInitializerInputs)
        }

        /// `dimensions` of a value that is not a constant.
        func dimensionsOfNonConstant(_ name: String, _ value: Value) throws(EvaluationError) -> [Dimension] {
            if let dims = value.inferred?.shape ?? value.type?.shape { return dims }
            throw EvaluationError("the shape of \(name) is unknown")
        }

        /// One dimension as a value: a number, or a symbol; an error when unknown.
        func dimensionValue(_ name: String, _ dim: Dimension) throws(EvaluationError) -> EvalValue {
            switch dim {
            case .value(let v): return .integer(v)
            case .param(let p): return .symbol(p)
            case .unknown: throw EvaluationError("a dimension of \(name) is unknown")
            }
        }

        mutating func callGraphFunction(_ function: LoweredExpression.GraphFunction, _ named: [LoweredExpression.GraphArgument],
                                        _ arguments: [LoweredExpression]) throws(EvaluationError) -> EvalValue {
            // The arguments are checked first; the values they name are then read in place (no
            // list is made: this runs several times per match).
            var first: (name: String, value: Value?)?
            for argument in named {
                switch argument {
                case .notAName:
                    if function == .dim { continue }
                    throw EvaluationError("\(function.rawValue)() takes variables")
                case .value(let index, let name):
                    if first == nil { first = (name, graphValue(index)) }
                case .computed(let slot, _) where function == .constant && computed[slot] != nil:
                    continue  // computed values are constants
                case .attribute(let index, let name) where function == .constant || function == .absent:
                    if function == .constant { continue }  // attributes are constants
                    if match.attributes[index] != nil {
                        why = "\(name) is present"
                        return .boolean(false)
                    }
                case .attribute(_, let name), .computed(_, let name), .other(let name):
                    throw EvaluationError("\(function.rawValue)(): '\(name)' is not a value of the match")
                }
            }
            switch function {
            case .constant:
                for case .value(let index, let name) in named {
                    // An absent optional input counts as constant.
                    guard let value = graphValue(index) else { continue }
                    if !value.isConstant(freezeInitializerInputs: context.freezeInitializerInputs) {
                        why = notConstantReason(name, value)
                        return .boolean(false)
                    }
                }
                return .boolean(true)
            case .unused:
                for case .value(let index, let name) in named {
                    guard let value = graphValue(index), !value.isUnused else { continue }
                    why = "\(variableLabel(name, value)) has \(value.useList.count) users"
                    return .boolean(false)
                }
                return .boolean(true)
            case .absent:
                for case .value(let index, let name) in named where graphValue(index) != nil {
                    why = "\(name) is present"
                    return .boolean(false)
                }
                return .boolean(true)
            default:
                guard let (name, maybeValue) = first else { throw EvaluationError("\(function.rawValue)() needs a variable") }
                guard let value = maybeValue else { throw EvaluationError("\(function.rawValue)(\(name)): \(name) is absent") }
                switch function {
                case .users:
                    // Each reading node input counts, and being a graph output counts once.
                    return .integer(Int64(value.useList.count + (value.isGraphOutput ? 1 : 0)))
                case .dtype:
                    if let type = value.withConstantTensor(freezeInitializerInputs: context.freezeInitializerInputs, \.dataType) {
                        return .dataType(type)
                    }
                    guard let type = value.inferred?.elementType ?? value.type?.elementType else {
                        throw EvaluationError("the element type of \(name) is unknown")
                    }
                    return .dataType(type)
                case .rank:
                    if let dims = constantDims(value) { return .integer(Int64(dims.count)) }
                    return .integer(Int64(try dimensionsOfNonConstant(name, value).count))
                case .shape:
                    if let dims = constantDims(value) { return .list(dims.map { .integer($0) }) }
                    var items: [EvalValue] = []
                    for dim in try dimensionsOfNonConstant(name, value) { items.append(try dimensionValue(name, dim)) }
                    return .list(items)
                case .numel:
                    var count: Int64 = 1
                    for dim in try dimensions(name, value) {
                        guard case .value(let v) = dim else { throw EvaluationError("the shape of \(name) is not static") }
                        let (product, overflow) = count.multipliedReportingOverflow(by: v)
                        guard !overflow else { throw EvaluationError("the element count of \(name) overflows") }
                        count = product
                    }
                    return .integer(count)
                case .dim:
                    let constant = constantDims(value)
                    let dims = constant == nil ? try dimensionsOfNonConstant(name, value) : []
                    let rank = constant?.count ?? dims.count
                    guard arguments.count == 2 else { throw EvaluationError("dim() takes a variable and an axis") }
                    var axis = Int(try evaluate(arguments[1]).asInteger())
                    if axis < 0 { axis += rank }
                    guard axis >= 0 && axis < rank else { throw EvaluationError("dim(\(name), \(axis)): \(name) has rank \(rank)") }
                    if let constant { return .integer(constant[axis]) }
                    return try dimensionValue(name, dims[axis])
                case .constant, .unused, .absent:
                    preconditionFailure("\(function.rawValue)() is answered above")
                }
            }
        }
    }
}

/// The schema of each node a rule's replacement creates (`OperatorSchemas.schema`), at the
/// opset version last asked for, and the nodes found to conform to it (`NewNodeFacts`): a rule
/// checks its new nodes at every match (`RuleProgram.newNodeProblem`), nearly always at one
/// version and with the same facts. Safe to use from any thread.
final class ReplacementSchemas: @unchecked Sendable {
    private let lock = Lock()
    /// By replacement node: the version, its schema, and the facts of nodes that conformed.
    private var known: [Int: (version: Int64, schema: OperatorSchema?, conforming: [[NewNodeFacts.Fact]])] = [:]
    /// The most conforming nodes kept per replacement node (a model whose matches differ in
    /// every fact checks each of them).
    static let conformingLimit = 8

    /// The schema of replacement node `index` (`spec`) at `version`.
    func schema(of index: Int, _ spec: ReplacementNode, version: Int64) -> OperatorSchema? {
        if let entry = lock.withLock({ known[index] }), entry.version == version { return entry.schema }
        let schema = OperatorSchemas.schema(spec.opType, domain: spec.domain, version: version)
        lock.withLock {
            if known[index]?.version != version { known[index] = (version, schema, []) }
        }
        return schema
    }

    /// The facts of the nodes of replacement node `index` known to conform at `version`.
    func conforming(_ index: Int, version: Int64) -> [[NewNodeFacts.Fact]] {
        lock.withLock { known[index].flatMap { $0.version == version ? $0.conforming : nil } ?? [] }
    }

    /// Records that a node of replacement node `index` with `facts` conforms at `version`.
    func remember(_ facts: [NewNodeFacts.Fact], conforming index: Int, version: Int64) {
        lock.withLock {
            guard var entry = known[index], entry.version == version, entry.conforming.count < Self.conformingLimit,
                  !entry.conforming.contains(facts) else { return }
            entry.conforming.append(facts)
            known[index] = entry
        }
    }
}

/// What the schema check of a new node (`OperatorSchema.violation`) reads of it, besides its
/// operator and outputs (fixed by the replacement node, whose outputs are new values of unknown
/// type): per input, whether it is there and its element type; per attribute, in the order
/// the node gets them before duplicates are resolved, its name and type. Two nodes of one
/// replacement node with equal facts get the same answer at one opset version.
enum NewNodeFacts {
    enum Fact: Equatable {
        case absentInput
        case input(DataType?)
        case attribute(String, AttributeType?)
    }

    /// The facts of replacement node `spec` made for `match` (`Replacement.makeNode`, with the
    /// element types `RuleProgram.newNodeProblem` gives its values).
    static func of(_ spec: ReplacementNode, _ match: Match, _ tensors: [Tensor], _ attributes: [AttributeValue]) -> [Fact] {
        var facts: [Fact] = []
        _ = visit(spec, match, tensors, attributes) { facts.append($0); return true }
        return facts
    }

    /// Whether `facts` are those of replacement node `spec` made for `match`, found without
    /// making a list of them.
    static func same(_ facts: [Fact], _ spec: ReplacementNode, _ match: Match, _ tensors: [Tensor], _ attributes: [AttributeValue]) -> Bool {
        var position = 0
        let walked = visit(spec, match, tensors, attributes) { fact in
            guard position < facts.count, facts[position] == fact else { return false }
            position += 1
            return true
        }
        return walked && position == facts.count
    }

    /// Passes each fact to `body`, in order, until it returns false; whether it never did.
    private static func visit(_ spec: ReplacementNode, _ match: Match, _ tensors: [Tensor], _ attributes: [AttributeValue],
                              _ body: (Fact) -> Bool) -> Bool {
        for input in spec.inputs {
            let fact: Fact
            switch input {
            case .bound(let variable):
                guard let value = match.value(variable) else { fact = .absentInput; break }
                fact = .input(value.inferred?.elementType ?? value.type?.elementType)
            case .computed(let slot): fact = .input(slot < tensors.count ? tensors[slot].dataType : nil)
            case .fresh: fact = .input(nil)
            case .absent: fact = .absentInput
            }
            if !body(fact) { return false }
        }
        for entry in spec.attributes {
            switch entry {
            case .copyAll(let source):
                let copied = match.nodes[source]!.attributes
                for index in copied.indices where !body(.attribute(copied[index].name, copied[index].value?.type)) { return false }
            case .set(let name, let slot):
                if !body(.attribute(name, attributes[slot].type)) { return false }
            }
        }
        return true
    }
}

/// One answer the graph gave a `compute` assignment: a constant's tensor (kept as stored, not
/// as float64) or the value of a graph function or `opset`.
enum TapeEntry {
    /// The tensor's box (an initializer's own): recorded without copying the tensor.
    case tensor(Box<Tensor>)
    case value(EvalValue)

    /// The entry as a value (a tensor entry is read again into float64).
    var value: EvalValue {
        get throws(EvaluationError) {
            switch self {
            case .tensor(let box): return .tensor(try RuleProgram.Scope.read(box.value), box.value.dataType)
            case .value(let value): return value
            }
        }
    }
}

/// A `compute` assignment run again without the graph, to make a deferred tensor's bytes when
/// the model is written: the assignments it depends on are evaluated in order, every answer
/// of the graph coming from what they recorded the first time, under the limits then in force.
/// Immutable, and evaluation reads nothing else, so it may run on any thread.
final class ComputeReplay: @unchecked Sendable {
    let program: RuleProgram
    /// The match's attributes (its values and nodes are not kept).
    let match: Match
    /// Per assignment up to `target`, what it read from the graph.
    let tapes: [[TapeEntry]]
    /// The assignments to run: those `target` depends on, and `target`, in order.
    let steps: [Int]
    /// The assignment whose value is made.
    let target: Int
    let dataType: DataType
    let limits = EvaluationLimits.current

    init(program: RuleProgram, match: Match, tapes: [[TapeEntry]], target: Int, dataType: DataType) {
        self.program = program
        self.match = match
        self.tapes = tapes
        self.target = target
        self.dataType = dataType
        // The earlier assignments that `target` reads, directly or through others.
        let computes = program.rule.computes
        var needed: Set<Int> = [target]
        for position in stride(from: target, through: 0, by: -1) where needed.contains(position) {
            let names = computes[position].value.referencedNames
            for earlier in 0..<position where names.contains(computes[earlier].name) {
                needed.insert(earlier)
            }
        }
        steps = needed.sorted()
    }

    /// Evaluates the target again and passes it, rounded to `dataType`, to `emit` a chunk at a
    /// time: a streamed target is never whole in memory.
    func fill(_ emit: DeferredBytes.Emit) throws {
        // What is read again must be what the rewrite read and checked.
        for position in steps {
            for case .tensor(let box) in tapes[position] {
                guard case .raw(let bytes) = box.value.storage, let change = bytes.sourceChange else { continue }
                throw EvaluationError("\(box.value.name.map { "tensor '\($0)'" } ?? "an input") is read from a file that changed since it was loaded (\(change))")
            }
        }
        let pieces = try NDArray.BytePieces(as: dataType)
        try EvaluationLimits.$current.withValue(limits) {
            var scope = RuleProgram.Scope(program: program, match: match, context: RewriteContext())
            scope.replaying = true
            var result: EvalValue = .absent
            for position in steps {
                let (slot, lowered) = program.loweredComputes[position]
                scope.tape = tapes[position]
                scope.cursor = 0
                guard position == target, program.streamable[position] else {
                    result = try scope.evaluate(lowered)
                    scope.computed[slot] = result
                    continue
                }
                switch try scope.evaluateStreaming(lowered) {
                case .value(let value):
                    result = value
                case .streamed(let streamed) where streamed.source.dataType == .float && dataType == .float:
                    try streamed.forEachFloatPiece(emit)
                    return
                case .streamed(let streamed):
                    try streamed.forEachChunk { _, chunk throws(EvaluationError) in
                        do {
                            try pieces.emit(chunk, emit)
                        } catch {
                            // The output stopped taking bytes (its consumer knows why).
                            throw EvaluationError("\(error)")
                        }
                    }
                    return
                }
            }
            guard case .tensor(let array, _) = result else {
                throw EvaluationError("\(program.rule.computes[steps.last!].name) is not a tensor when computed again")
            }
            try array.values.withUnsafeBufferPointer { values throws in try pieces.emit(values, emit) }
        }
    }
}

extension Expression {
    /// Every name this expression reads.
    var referencedNames: Set<String> {
        var names = Set<String>()
        var pending = [self]
        while let expression = pending.popLast() {
            if case .name(let name, _) = expression { names.insert(name) }
            pending.append(contentsOf: expression.children)
        }
        return names
    }
}
