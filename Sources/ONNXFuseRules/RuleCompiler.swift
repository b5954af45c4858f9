import ONNXFuseIR
import ONNXFuseRewrite

/// A rule ready to run, with what `rules list` and `rules show` print.
public struct CompiledRule: Sendable {
    /// The rule's name.
    public let name: String
    /// The file it came from.
    public let file: String
    /// The comment lines right before it.
    public let comment: [String]
    /// Its source text.
    public let text: String
    /// What the engine runs: one rewrite per form of the rule (`MatchForm`), in the order they
    /// are tried, all named after the rule.
    public let rewrites: [RewriteRule]

    /// The rewrite of the rule's first form (its only one, unless its match has alternatives).
    public var rewrite: RewriteRule { rewrites[0] }

    /// A rule built in another way than from a rule file (a native rule written in Swift).
    public init(name: String, file: String, comment: [String], text: String, rewrite: RewriteRule) {
        self.init(name: name, file: file, comment: comment, text: text, rewrites: [rewrite])
    }

    /// A rule of one or more forms.
    init(name: String, file: String, comment: [String], text: String, rewrites: [RewriteRule]) {
        precondition(!rewrites.isEmpty, "a rule has at least one form")
        self.name = name
        self.file = file
        self.comment = comment
        self.text = text
        self.rewrites = rewrites
    }
}

/// One way a rule's match can be met: the nodes of one match block, with one alternative chosen
/// on each line and each optional line present or missing. A rule has at least one form; each
/// compiles to its own rewrite, and they are tried in order.
struct MatchForm {
    /// The node patterns, in order (the last is the root).
    var nodes: [NodeSyntax]
    /// The output of each missing optional node, and the value it is instead (its first input).
    var aliases: [String: String]
    /// How the form is told apart in explanations and errors ("" for a rule of one form):
    /// "form 2 of 4 (line 7: ReduceMean(x, a); line 9: without Cast)".
    var label: String

    /// The value `name` stands for once the missing nodes' outputs are their inputs.
    func resolve(_ name: String) -> String {
        var name = name
        var steps = 0
        while let target = aliases[name], steps <= aliases.count {
            name = target
            steps += 1
        }
        return name
    }
}

/// The most forms one rule may have (its match blocks, times the alternatives of each line, times
/// two for each optional line).
let maximumMatchForms = 64

/// The forms of `rule`, in the order they are tried: block by block; within a block, the first
/// line's choice changes slowest, alternatives in written order, an optional node present before
/// missing.
func matchForms(of rule: RuleSyntax) -> Result<[MatchForm], RuleError> {
    var total = 0
    for block in rule.matchBlocks {
        var count = 1
        for line in block.lines {
            count *= line.alternatives.count + (line.isOptional ? 1 : 0)
            if count > maximumMatchForms { break }
        }
        total += count
        if total > maximumMatchForms {
            return .failure(RuleError("rule '\(rule.name)' has more than \(maximumMatchForms) forms (match blocks, times the alternatives of each line, times 2 for each optional node), the limit", at: rule.location))
        }
    }
    var forms: [MatchForm] = []
    for block in rule.matchBlocks {
        // Per line: the position of its choice among the alternatives, then (an optional line)
        // missing.
        var positions = block.lines.map { _ in 0 }
        func choiceCount(_ line: MatchLineSyntax) -> Int { line.alternatives.count + (line.isOptional ? 1 : 0) }
        while true {
            var nodes: [NodeSyntax] = []
            var aliases: [String: String] = [:]
            var notes: [String] = []
            for (line, choice) in zip(block.lines, positions) {
                if choice == line.alternatives.count {
                    let node = line.alternatives[0]
                    if let output = node.outputs.first ?? nil, case .variable(let input)? = node.inputs.first {
                        aliases[output] = input
                    }
                    notes.append("line \(line.location.line): without \(node.opType)")
                } else {
                    nodes.append(line.alternatives[choice])
                    if line.alternatives.count > 1 {
                        notes.append("line \(line.location.line): \(describeAlternative(line.alternatives[choice]))")
                    } else if line.isOptional {
                        notes.append("line \(line.location.line): with \(line.alternatives[0].opType)")
                    }
                }
            }
            // A form whose every node is missing matches nothing: it is not a form.
            if !nodes.isEmpty {
                if rule.matchBlocks.count > 1 { notes.insert("match at line \(block.location.line)", at: 0) }
                forms.append(MatchForm(nodes: nodes, aliases: aliases, label: notes.isEmpty ? "" : "(" + notes.joined(separator: "; ") + ")"))
            }
            // The next combination: the last line changes fastest.
            var index = block.lines.count - 1
            while index >= 0 {
                positions[index] += 1
                if positions[index] < choiceCount(block.lines[index]) { break }
                positions[index] = 0
                index -= 1
            }
            if index < 0 { break }
        }
    }
    for index in forms.indices {
        forms[index].label = forms.count == 1 ? ""
            : "form \(index + 1) of \(forms.count)" + (forms[index].label.isEmpty ? "" : " " + forms[index].label)
    }
    return .success(forms)
}

/// An alternative as a label shows it: `ReduceMean<axes>(x)`, `ReduceMean(x, a)`.
func describeAlternative(_ node: NodeSyntax) -> String {
    let attributes = node.attributes.map { entry -> String in
        switch entry {
        case .equals(let name, _, _), .bind(let name, _, _, _): return name
        case .absent(let name, _): return "!" + name
        case .copyFrom(let variable, _): return "..." + variable
        }
    }
    let inputs = node.inputs.map { input -> String in
        switch input {
        case .variable(let name): return name
        case .optional(let name): return name + "?"
        case .any: return "_"
        case .rest: return "..."
        }
    }
    return (node.domain.map { $0 + "." } ?? "") + node.opType + (attributes.isEmpty ? "" : "<" + attributes.joined(separator: ", ") + ">")
        + "(" + inputs.joined(separator: ", ") + ")"
}

/// The functions of `where` that look at graph values rather than tensors; any other call
/// goes to the function table.
let graphValueFunctions: Set<String> = ["constant", "unused", "users", "absent", "rank", "shape", "dim", "numel", "dtype"]

/// How many arguments each graph function takes (the shape functions take the same when given a
/// computed tensor).
let graphFunctionArity: [String: ClosedRange<Int>] = [
    "constant": 1...Int.max, "unused": 1...Int.max, "absent": 1...Int.max, "users": 1...1,
    "rank": 1...1, "shape": 1...1, "numel": 1...1, "dtype": 1...1, "dim": 2...2,
]

/// `2 arguments`, `1 argument`, `at least 1 argument`, `1 to 2 arguments`.
func describeArity(_ arity: ClosedRange<Int>) -> String {
    if arity.upperBound == Int.max { return "at least \(arity.lowerBound) argument\(arity.lowerBound == 1 ? "" : "s")" }
    if arity.lowerBound == arity.upperBound { return "\(arity.lowerBound) argument\(arity.lowerBound == 1 ? "" : "s")" }
    return "\(arity.lowerBound) to \(arity.upperBound) arguments"
}

/// The functions of `graphValueFunctions` that also take a tensor the rule computes (or any
/// other expression): `numel(k)` of `k = full([4], 1.0)`.
let shapeFunctions: Set<String> = ["rank", "shape", "dim", "numel", "dtype"]

/// Whether a call of `function` reads a value of the match (the graph) rather than evaluating
/// its arguments: a graph function whose first argument names a value of the match, or one of
/// `constant`, `unused`, `absent`.
func callReadsGraph(_ function: String, _ arguments: [Expression], isMatchValue: (String) -> Bool) -> Bool {
    guard graphValueFunctions.contains(function) else { return false }
    guard shapeFunctions.contains(function) else { return true }
    if case .name(let name, _)? = arguments.first { return isMatchValue(name) }
    return false
}

/// Turns parsed rules into engine rules, reporting every error (undefined variables,
/// unknown functions, values of the match left without a producer, misplaced syntax)
/// before any model is touched.
public func compileRules(_ file: RuleFileSyntax, functions: FunctionTable = .builtins) throws(RuleErrors) -> [CompiledRule] {
    var errors: [RuleError] = []
    var compiled: [CompiledRule] = []
    var names = Set<String>()
    for rule in file.rules {
        if !names.insert(rule.name).inserted {
            errors.append(RuleError("rule '\(rule.name)' is defined twice in this file", at: rule.location))
        }
        if !rule.items.isEmpty {
            do throws(RuleErrors) {
                var compiler = RuleCompiler(rule: rule, form: MatchForm(nodes: [], aliases: [:], label: ""), file: file.file, functions: functions)
                compiled.append(try compiler.compileItemRule(rule.items[0]))
            } catch {
                errors.append(contentsOf: error.errors)
            }
            continue
        }
        let forms: [MatchForm]
        switch matchForms(of: rule) {
        case .success(let found): forms = found
        case .failure(let error):
            errors.append(error)
            continue
        }
        if forms.isEmpty {
            errors.append(RuleError("rule '\(rule.name)' matches nothing", at: rule.location))
            continue
        }
        // Every variable some form binds: a form that does not bind it sees it absent.
        var otherValues: [String] = []
        var otherAttributes: [String] = []
        for form in forms {
            for node in form.nodes {
                for case .variable(let name) in node.inputs { otherValues.append(name) }
                for case .optional(let name) in node.inputs { otherValues.append(name) }
                for case let name? in node.outputs { otherValues.append(name) }
                for case .bind(_, let variable, _, _) in node.attributes { otherAttributes.append(variable) }
            }
        }
        // An error found in some forms only names them; one found in every form is reported once.
        var formErrors: [(error: RuleError, forms: [Int])] = []
        var rewrites: [RewriteRule] = []
        for (index, form) in forms.enumerated() {
            do throws(RuleErrors) {
                var compiler = RuleCompiler(rule: rule, form: form, file: file.file, functions: functions)
                compiler.variablesOfOtherForms = (otherValues, otherAttributes)
                var rewrite = try compiler.compileForm()
                if forms.count > 1 { rewrite.form = RuleForm(index: index, label: form.label) }
                rewrites.append(rewrite)
            } catch {
                for found in error.errors {
                    if let known = formErrors.firstIndex(where: { $0.error == found }) {
                        formErrors[known].forms.append(index)
                    } else {
                        formErrors.append((found, [index]))
                    }
                }
            }
        }
        for (found, inForms) in formErrors {
            var error = found
            if inForms.count < forms.count {
                let shown = inForms.prefix(3).map { forms[$0].label }.joined(separator: ", ")
                error.message += " (in \(shown)\(inForms.count > 3 ? " and \(inForms.count - 3) more" : ""))"
            }
            errors.append(error)
        }
        if formErrors.isEmpty {
            compiled.append(CompiledRule(name: rule.name, file: file.file, comment: rule.comment, text: rule.text, rewrites: rewrites))
        }
    }
    if !errors.isEmpty { throw RuleErrors(errors) }
    return compiled
}

/// Compiles one rule.
struct RuleCompiler {
    let rule: RuleSyntax
    /// The form being compiled: its nodes stand for the match.
    let form: MatchForm
    /// The value and attribute variables that the rule's other forms bind; this form sees those
    /// it does not bind itself as absent.
    var variablesOfOtherForms: (values: [String], attributes: [String]) = ([], [])
    let file: String
    let functions: FunctionTable
    var errors: [RuleError] = []
    var valueVariables: [String: Int] = [:]
    var valueNames: [String] = []
    var attributeVariables: [String: Int] = [:]
    var attributeNames: [String] = []
    /// Value variables that a match node outputs, and which node.
    var producedBy: [Int: Int] = [:]
    /// Value variables some match node reads.
    var consumed = Set<Int>()
    var computedSlots: [String: Int] = [:]
    var freshSlots: [String: Int] = [:]
    /// The expressions of `name = expr` attribute entries in replace, by slot.
    var attributeSlotExpressions: [Expression] = []
    /// The attribute each slot sets, for the type its operator's schema declares.
    var attributeSlotTargets: [AttributeTarget] = []
    /// Where each node line of replace starts, in order.
    var replacementLocations: [SourceLocation] = []

    init(rule: RuleSyntax, form: MatchForm, file: String, functions: FunctionTable) {
        self.rule = rule
        self.form = form
        self.file = file
        self.functions = functions
    }

    mutating func error(_ message: String, _ location: SourceLocation) {
        errors.append(RuleError(message, at: location))
    }

    mutating func valueVariable(_ written: String) -> Int {
        let name = form.resolve(written)
        if let index = valueVariables[name] { return index }
        valueVariables[name] = valueNames.count
        valueNames.append(name)
        return valueNames.count - 1
    }

    /// The rewrite of this form.
    mutating func compileForm() throws(RuleErrors) -> RewriteRule {
        // Match: the pattern. The last node line is the root the engine anchors at.
        var patternNodes: [PatternNode] = []
        for node in form.nodes {
            var inputs: [PatternInput] = []
            for (position, input) in node.inputs.enumerated() {
                switch input {
                case .variable(let name):
                    let v = valueVariable(name)
                    consumed.insert(v)
                    inputs.append(.variable(v))
                case .optional(let name):
                    let v = valueVariable(name)
                    consumed.insert(v)
                    inputs.append(.optional(v))
                case .any:
                    inputs.append(.any)
                case .rest:
                    if position != node.inputs.count - 1 { error("'...' must be the last input", node.location) }
                    inputs.append(.rest)
                }
            }
            var outputs: [PatternOutput] = []
            for output in node.outputs {
                guard let output else { outputs.append(.ignored); continue }
                let v = valueVariable(output)
                if let other = producedBy[v] {
                    error("'\(output)' is already an output of \(form.nodes[other].opType)", node.location)
                }
                producedBy[v] = patternNodes.count
                outputs.append(.variable(v))
            }
            var attributes: [AttributeConstraint] = []
            for entry in node.attributes {
                switch entry {
                case .equals(let name, let value, let location):
                    if let literal = attributeLiteral(value) {
                        attributes.append(.equals(name, literal))
                    } else {
                        error("attribute '\(name)' must equal a literal in match (a number, string or list of numbers)", location)
                    }
                case .bind(let name, let variable, let defaultValue, let location):
                    guard attributeVariables[variable] == nil, valueVariables[variable] == nil else {
                        error("'\(variable)' is already a variable of this rule", location)
                        continue
                    }
                    attributeVariables[variable] = attributeNames.count
                    attributeNames.append(variable)
                    var defaultAttribute: AttributeLiteral?
                    if let defaultValue {
                        defaultAttribute = attributeLiteral(defaultValue)
                        if defaultAttribute == nil { error("the default of '\(name)' must be a literal", location) }
                    }
                    attributes.append(.bind(name, variable: attributeNames.count - 1, defaultValue: defaultAttribute))
                case .absent(let name, _):
                    attributes.append(.absent(name))
                case .copyFrom(_, let location):
                    error("'...' copies attributes in replace, not in match", location)
                }
            }
            patternNodes.append(PatternNode(opType: node.opType, domain: node.domain ?? "", inputs: inputs, outputs: outputs,
                                            attributes: attributes, commutative: rule.commutative.contains(node.opType)))
        }
        for name in attributeVariables.keys.sorted() where valueVariables[name] != nil {
            error("'\(name)' names both a value and an attribute", rule.location)
        }
        // A missing optional node's output is the value of its input.
        for alias in form.aliases.keys.sorted() where valueVariables[alias] == nil {
            valueVariables[alias] = valueVariable(alias)
        }
        // What other forms bind and this one does not is absent here.
        for name in variablesOfOtherForms.values where valueVariables[name] == nil && attributeVariables[name] == nil {
            _ = valueVariable(name)
        }
        for name in variablesOfOtherForms.attributes where valueVariables[name] == nil && attributeVariables[name] == nil {
            attributeVariables[name] = attributeNames.count
            attributeNames.append(name)
        }

        checkConditionsAndComputes()

        // Replace.
        let replacement = compileReplacement()

        // Every value the match produces and does not read itself may be used outside it:
        // the replacement must give it a producer.
        let replaced = replacement.replacedVariables
        for (v, node) in producedBy.sorted(by: { $0.key < $1.key }) where !consumed.contains(v) && !replaced.contains(v) {
            error("'\(valueNames[v])', an output of \(form.nodes[node].opType), is not given a replacement", form.nodes[node].location)
        }

        guard errors.isEmpty else { throw RuleErrors(errors) }
        let pattern: Pattern
        do {
            pattern = try Pattern(nodes: patternNodes, root: patternNodes.count - 1, valueNames: valueNames, attributeNames: attributeNames)
        } catch {
            throw RuleErrors([RuleError(error.description, at: form.nodes.last!.location)])
        }
        var readSlots = Set<Int>()
        for node in replacement.nodes { for case .computed(let slot) in node.inputs { readSlots.insert(slot) } }
        for case (_, .computed(let slot)) in replacement.forwards { readSlots.insert(slot) }
        let program = RuleProgram(rule: rule, valueVariables: valueVariables, attributeVariables: attributeVariables,
                                  computedSlots: computedSlots, attributeSlotExpressions: attributeSlotExpressions,
                                  attributeSlotTargets: attributeSlotTargets, functions: functions, readSlots: readSlots,
                                  replacement: replacement, replacementLocations: replacementLocations)
        // What `prepare` reads: the variables its conditions, computations and attribute values
        // name (the matcher skips assignments that cannot change its answer).
        let conditions = program.conditions
        let checks = conditions.map(variables(in:))
        var reads = MatchVariables()
        for named in checks + (rule.computes.map(\.value) + attributeSlotExpressions).map(variables(in:)) {
            reads.formUnion(named)
        }
        let dependencies = PrepareDependencies(reads: reads, checks: checks) { index, match, context in
            program.check(index, match, context)
        }
        return RewriteRule(name: rule.name, benefit: rule.benefit, pattern: pattern, replacement: replacement,
                           dependencies: dependencies) { match, context in
            program.prepare(match, context)
        }
    }

    /// The variables of the match that `expression` names.
    func variables(in expression: Expression) -> MatchVariables {
        var named = MatchVariables()
        var pending = [expression]
        while let next = pending.popLast() {
            if case .name(let name, _) = next {
                if let v = valueVariables[name] { named.values.insert(v) }
                if let a = attributeVariables[name] { named.attributes.insert(a) }
            }
            pending += next.children
        }
        return named
    }

    /// A rule anchored at an initializer or an operator set import: it removes what it
    /// matched (the engine checks that nothing uses it) when its conditions hold.
    mutating func compileItemRule(_ item: ItemMatchSyntax) throws(RuleErrors) -> CompiledRule {
        for extra in rule.items.dropFirst() {
            error("'\(item.kind.rawValue) \(item.name)' stands alone in match; it cannot be combined with '\(extra.kind.rawValue) \(extra.name)'", extra.location)
        }
        if let node = rule.match.first {
            error("'\(item.kind.rawValue) \(item.name)' stands alone in match; it cannot be combined with node patterns", node.location)
        }
        if rule.matchBlocks.count > 1 {
            error("'\(item.kind.rawValue) \(item.name)' stands alone in match; a rule that matches it has one match block", rule.matchBlocks[1].location)
        }
        if let location = line(of: rule.replacements.first) {
            error("a rule that matches '\(item.kind.rawValue) \(item.name)' removes it: its replace block must be empty", location)
        }
        let anchor: PatternAnchor
        switch item.kind {
        case .initializer:
            anchor = .initializer
            _ = valueVariable(item.name)
        case .opsetImport:
            anchor = .opsetImport
            attributeVariables[item.name] = 0
            attributeNames = [item.name]
        }
        checkConditionsAndComputes()
        guard errors.isEmpty else { throw RuleErrors(errors) }
        let pattern = Pattern(itemAnchor: anchor, name: item.name)
        let program = RuleProgram(rule: rule, valueVariables: valueVariables, attributeVariables: attributeVariables,
                                  computedSlots: computedSlots, attributeSlotExpressions: [], attributeSlotTargets: [],
                                  functions: functions, readSlots: [])
        let rewrite = RewriteRule(name: rule.name, benefit: rule.benefit, pattern: pattern,
                                  replacement: ONNXFuseRewrite.Replacement(nodes: [])) { match, context in
            program.prepare(match, context)
        }
        return CompiledRule(name: rule.name, file: file, comment: rule.comment, text: rule.text, rewrite: rewrite)
    }

    /// Where and compute: every name must be known, every function too; gives each computed
    /// value its slot.
    mutating func checkConditionsAndComputes() {
        for condition in rule.guards { check(condition, computedSoFar: []) }
        var computedSoFar: Set<String> = []
        for assignment in rule.computes {
            check(assignment.value, computedSoFar: computedSoFar)
            if valueVariables[assignment.name] != nil || attributeVariables[assignment.name] != nil || computedSoFar.contains(assignment.name) {
                error("'\(assignment.name)' is already defined", assignment.location)
            }
            computedSlots[assignment.name] = computedSlots.count
            computedSoFar.insert(assignment.name)
        }
    }

    /// Where a replace line starts.
    func line(of replacement: Replacement?) -> SourceLocation? {
        switch replacement {
        case .node(let node): return node.location
        case .forward(_, _, let location): return location
        case nil: return nil
        }
    }

    mutating func compileReplacement() -> ONNXFuseRewrite.Replacement {
        var nodes: [ReplacementNode] = []
        var nodeLocations: [SourceLocation] = []
        var forwards: [(target: Int, source: ValueReference)] = []
        var freshNames: [String] = []
        func reference(_ name: String, _ location: SourceLocation, _ compiler: inout RuleCompiler) -> ValueReference {
            if let v = compiler.valueVariables[name] { return .bound(v) }
            if let slot = compiler.computedSlots[name] { return .computed(slot) }
            if let index = compiler.freshSlots[name] { return .fresh(index) }
            if compiler.attributeVariables[name] != nil {
                compiler.error("'\(name)' is an attribute of the match, which a node cannot read as an input; set it as an attribute ('name = \(name)') or compute a tensor from it", location)
                return .absent
            }
            compiler.error("'\(name)' is not defined (not in match, compute, or an earlier replace line)", location)
            return .absent
        }
        // Each matched value is redefined at most once (by one node output or one forward):
        // a second definition would give the graph two values of one name.
        var redefined = Set<Int>()
        for line in rule.replacements {
            switch line {
            case .forward(let target, let source, let location):
                guard let v = valueVariables[target], producedBy[v] != nil else {
                    error("'\(target)' must be a value the match produces", location)
                    continue
                }
                if !redefined.insert(v).inserted { error("'\(target)' is redefined twice in replace", location) }
                forwards.append((v, reference(source, location, &self)))
            case .node(let node):
                var inputs: [ValueReference] = []
                for input in node.inputs {
                    switch input {
                    case .variable(let name), .optional(let name): inputs.append(reference(name, node.location, &self))
                    case .any: inputs.append(.absent)
                    case .rest: error("'...' is for match, not replace", node.location)
                    }
                }
                var attributes: [ReplacementAttribute] = []
                for entry in node.attributes {
                    switch entry {
                    case .copyFrom(let variable, let location):
                        guard let v = valueVariables[variable], let source = producedBy[v] else {
                            error("'...\(variable)' must name a value that a match node produces", location)
                            continue
                        }
                        attributes.append(.copyAll(fromPatternNode: source))
                    case .equals(let name, let value, let location):
                        check(value, computedSoFar: Set(computedSlots.keys))
                        let target = AttributeTarget(opType: node.opType, domain: node.domain ?? "", name: name)
                        if let problem = target.staticProblem(with: value) { error(problem, location) }
                        attributes.append(.set(name, slot: attributeSlotExpressions.count))
                        attributeSlotExpressions.append(value)
                        attributeSlotTargets.append(target)
                    case .bind(_, _, _, let location), .absent(_, let location):
                        error("replace sets attributes with 'name = value' or copies them with '...y'", location)
                    }
                }
                var outputs: [ReplacementOutput] = []
                for output in node.outputs {
                    guard let output else { outputs.append(.none); continue }
                    if let v = valueVariables[output] {
                        if producedBy[v] == nil {
                            error("'\(output)' comes from outside the match; replace can only redefine values the match produces", node.location)
                        } else if !redefined.insert(v).inserted {
                            error("'\(output)' is redefined twice in replace", node.location)
                        }
                        outputs.append(.replaces(v))
                    } else if computedSlots[output] != nil || freshSlots[output] != nil {
                        error("'\(output)' is already defined", node.location)
                        outputs.append(.none)
                    } else {
                        freshSlots[output] = freshNames.count
                        freshNames.append(output)
                        outputs.append(.fresh(freshSlots[output]!))
                    }
                }
                nodes.append(ReplacementNode(opType: node.opType, domain: node.domain ?? "", inputs: inputs, outputs: outputs, attributes: attributes))
                nodeLocations.append(node.location)
            }
        }
        // A new node that reads a matched value which that node or a later one redefines, or
        // which a forward points at a new node's output, would end up reading its own result:
        // the graph would have a cycle.
        let computedNames = computedSlots.sorted { $0.value < $1.value }.map(\.key)
        let replacement = ONNXFuseRewrite.Replacement(nodes: nodes, forwards: forwards, computedNames: computedNames, freshNames: freshNames)
        for (index, v) in replacement.nodesReadingTheirOwnResult {
            let name = valueVariables.first { $0.value == v }?.key ?? "a value"
            error("'\(name)' is read by a replace line before (or where) it is redefined: the new node would read its own result, a cycle", nodeLocations[index])
        }
        replacementLocations = nodeLocations
        return replacement
    }

    /// Whether `name` is a variable here: of the match (a value or an attribute) or computed
    /// on an earlier line.
    func isVariable(_ name: String, computedSoFar: Set<String>) -> Bool {
        valueVariables[name] != nil || attributeVariables[name] != nil || computedSoFar.contains(name)
    }

    /// Reports undefined names and unknown functions in `expression`.
    mutating func check(_ expression: Expression, computedSoFar: Set<String>) {
        switch expression {
        case .number, .string, .boolean:
            break
        case .name(let name, let location):
            if !isVariable(name, computedSoFar: computedSoFar) && DataType(name: name) == nil {
                error("'\(name)' is not defined", location)
            }
        case .call(let name, let arguments, let location):
            let readsGraph = callReadsGraph(name, arguments) { valueVariables[$0] != nil }
            if let arity = graphFunctionArity[name], !arity.contains(arguments.count) {
                // The count first: `rank(c, 1)` is a wrong count, not a wrong variable.
                error("\(name)() takes \(describeArity(arity)), not \(arguments.count)", location)
                for argument in arguments where !readsGraph { check(argument, computedSoFar: computedSoFar) }
                return
            }
            if readsGraph {
                for (position, argument) in arguments.enumerated() {
                    // dim(v, axis): the axis is an expression; every other argument names a value.
                    if name == "dim" && position == 1 {
                        check(argument, computedSoFar: computedSoFar)
                        if let found = ArgumentKind.integer.problem(with: argument, isVariable: { isVariable($0, computedSoFar: computedSoFar) }) {
                            error("dim(): argument 2 must be an integer, not \(found)", argument.location)
                        }
                        continue
                    }
                    // An attribute (of an attribute-or-input alternative) is constant, and may be absent.
                    if case .name(let variable, _) = argument,
                       valueVariables[variable] != nil || (name == "constant" && computedSoFar.contains(variable))
                        || (name == "constant" || name == "absent") && attributeVariables[variable] != nil {
                        continue
                    }
                    error("\(name)() takes variables of the match", argument.location)
                }
            } else if !functions.contains(name) {
                error("unknown function '\(name)'", location)
            } else if let arity = functions.arity(of: name), !arity.contains(arguments.count) {
                error("\(name)() takes \(describeArity(arity)), not \(arguments.count)", location)
            } else if case let kinds = functions.argumentKinds(of: name), !kinds.isEmpty {
                // Literal arguments of the wrong kind, each named by its position.
                for (position, argument) in arguments.enumerated() {
                    let kind = kinds[min(position, kinds.count - 1)]
                    if let found = kind.problem(with: argument, isVariable: { isVariable($0, computedSoFar: computedSoFar) }) {
                        error("\(name)(): argument \(position + 1) must be \(kind.described), not \(found)", argument.location)
                    }
                }
            }
            if !readsGraph {
                for argument in arguments { check(argument, computedSoFar: computedSoFar) }
            }
        case .list(let items, _):
            for item in items { check(item, computedSoFar: computedSoFar) }
        case .unary(_, let operand, _):
            check(operand, computedSoFar: computedSoFar)
        case .binary(_, let lhs, let rhs, _):
            check(lhs, computedSoFar: computedSoFar)
            check(rhs, computedSoFar: computedSoFar)
        }
    }
}

/// A literal attribute value written in a rule, or nil when the expression is not one.
func attributeLiteral(_ expression: Expression) -> AttributeLiteral? {
    switch expression {
    case .number(let value, let integer, _):
        return integer.map { .int($0) } ?? .float(value)
    case .unary(.negate, .number(let value, let integer, _), _):
        return integer.map { .int(-$0) } ?? .float(-value)
    case .string(let text, _):
        return .string(text)
    case .boolean(let flag, _):
        return .int(flag ? 1 : 0)
    case .list(let items, _):
        let literals = items.compactMap(attributeLiteral)
        guard literals.count == items.count else { return nil }
        if literals.allSatisfy({ if case .int = $0 { return true }; return false }) {
            return .ints(literals.map { if case .int(let v) = $0 { return v }; return 0 })
        }
        return .floats(literals.map {
            switch $0 {
            case .int(let v): return Double(v)
            case .float(let v): return v
            default: return .nan
            }
        })
    default:
        return nil
    }
}
