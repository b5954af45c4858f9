import ONNXFuseIR
import ONNXFuseOps

/// Shares identical constant initializers: every initializer (not a graph input, not a graph
/// output) equal in type, dims and bytes to an earlier one of the same graph is replaced by
/// it and removed. Returns how many were removed.
func mergeDuplicateInitializers(_ model: Model) -> Int {
    var removed = 0
    for graph in model.allGraphs {
        // Training information (kept opaque) may read any initializer of the main graph.
        if graph === model.graph && model.opaqueReferences.hasTrainingInfo { continue }
        // Candidates are grouped by type, dims and a hash of a few samples of the elements;
        // only tensors that share a group are hashed whole and then compared, so the weights of
        // a large model, which all differ, are not read in full (each round calls this again).
        // A list is made only for a key seen twice: most initializers are alone in theirs.
        // (Groups are disjoint, so the order they are merged in does not change the result.)
        var first: [Int: Value] = [:]
        // Sized for every initializer up front: growing it step by step rehashed it ~14 times.
        first.reserveCapacity(graph.initializerCount)
        var groups: [Int: [Value]] = [:]
        var order: [Int] = []
        for value in graph.initializers where value.definition == .initializer && !value.isGraphOutput {
            // Through the initializer's box: `withInitializer`'s closure would copy the tensor.
            guard let box = value.constantTensorBox() else { continue }
            let key = tensorHash(box, whole: false)
            guard let earlier = first[key] else {
                first[key] = value
                continue
            }
            if groups[key] == nil { order.append(key) }
            groups[key, default: [earlier]].append(value)
        }
        for key in order {
            let sampled = groups[key]!
            var buckets: [Int: [Value]] = [:]
            var bucketOrder: [Int] = []
            for value in sampled {
                let whole = tensorHash(value.constantTensorBox()!, whole: true)
                if buckets[whole] == nil { bucketOrder.append(whole) }
                buckets[whole, default: []].append(value)
            }
            for bucket in bucketOrder {
                guard let values = buckets[bucket], values.count > 1 else { continue }
                var kept: [(value: Value, tensor: Tensor)] = []
                for value in values {
                    let tensor = value.initializer!
                    if let twin = kept.first(where: { tensorsEqual($0.tensor, tensor) }) {
                        value.replaceAllUsesUnchecked(with: twin.value)
                        if value.isUnused {
                            graph.removeInitializerUnchecked(value)
                            removed += 1
                        }
                    } else {
                        kept.append((value, tensor))
                    }
                }
            }
        }
    }
    return removed
}

/// A hash of what equal tensors share: element type, dims, and the stored elements, whole or
/// sampled (the first, middle and last 64 bytes, `DeferredBytes.sampleRanges`). Tensors whose
/// elements are stored in different fields may hash differently: they are then not merged,
/// which is safe. Deferred bytes hash as their computed bytes would.
// The tensor is read in its box (passing `box.value` copied it: a retain and release of each
// field) and everything goes into one hasher (a second one for the bytes cost its own setup
// and finalization on every initializer of every round).
func tensorHash(_ box: Box<Tensor>, whole: Bool) -> Int {
    var hasher = Hasher()
    hasher.combine(box.value.dataType.rawValue)
    hasher.combine(box.value.dims.count)
    for dim in box.value.dims { hasher.combine(dim) }
    switch box.value.storage {
    case .none: break
    case .raw(let b), .floatData(let b), .int32Data(let b), .int64Data(let b), .doubleData(let b), .uint64Data(let b):
        hasher.combine(b.count)
        if let deferred = b.deferred, !whole {
            // Its samples, without computing the bytes: they are the bytes of the same ranges.
            deferred.samples.withUnsafeBytes { samples in
                var start = 0
                for range in DeferredBytes.sampleRanges(count: b.count) {
                    hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: samples[start..<(start + range.count)]))
                    start += range.count
                }
            }
        } else {
            // A whole hash of deferred bytes computes them for the moment only; bytes that
            // cannot be computed are left out of the hash.
            _ = try? b.withTransientBytes { combineBytes($0, whole: whole, into: &hasher) }
            // Reading a few bytes of a mapped file maps its neighbouring pages too (the kernel
            // faults around): a weight's pages leave resident memory again at once.
            b.releaseResidentPages()
        }
    case .stringData(let strings):
        for string in strings { hasher.combine(string) }
    }
    return hasher.finalize()
}

/// Hashes `bytes` whole, or (unless they are few) the first, middle and last 64 of them, the
/// ranges of `DeferredBytes.sampleRanges`, one range at a time as `tensorHash` hashes samples.
private func combineBytes(_ bytes: UnsafeRawBufferPointer, whole: Bool, into hasher: inout Hasher) {
    let sample = DeferredBytes.sampleLength
    if whole || bytes.count <= 3 * sample {
        hasher.combine(bytes: bytes)
    } else {
        let middle = (bytes.count - sample) / 2
        hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: bytes[..<sample]))
        hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: bytes[middle..<(middle + sample)]))
        hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: bytes[(bytes.count - sample)...]))
    }
}

/// A problem with `--input-shape`.
public struct InputShapeError: Error, CustomStringConvertible {
    /// What is wrong.
    public let description: String
}

/// Fixes the dimensions of graph inputs (as onnxsim's `--overwrite-input-shape` does): each
/// named input of the main graph gets a declared tensor type of that shape, keeping its
/// element type. Every name must be a graph input of rank equal to the shape given (when its
/// rank is declared) whose static dimensions agree.
public func setInputShapes(_ model: Model, _ shapes: [(name: String, dims: [Int64])]) throws(InputShapeError) {
    for (name, dims) in shapes {
        guard let input = model.graph.inputs.first(where: { $0.name == name }) else {
            let names = model.graph.inputs.filter { !$0.hasInitializer }.map(\.name)
            throw InputShapeError(description: "--input-shape: '\(name)' is not a graph input (inputs: \(names.joined(separator: ", ")))")
        }
        guard dims.allSatisfy({ $0 >= 0 }) else { throw InputShapeError(description: "--input-shape: \(name): dimensions must not be negative") }
        let declared = input.info?.type
        guard case .tensor(let elementType, let shape)? = declared?.kind else {
            throw InputShapeError(description: "--input-shape: '\(name)' is not declared as a tensor")
        }
        if let shape {
            guard shape.count == dims.count else {
                throw InputShapeError(description: "--input-shape: '\(name)' has rank \(shape.count), not \(dims.count)")
            }
            for (axis, (old, new)) in zip(shape, dims).enumerated() {
                if case .value(let v) = old, v != new {
                    throw InputShapeError(description: "--input-shape: dimension \(axis) of '\(name)' is \(v), not \(new)")
                }
            }
        }
        var info = input.info ?? ValueInfo(type: nil)
        info.type = TypeInfo(kind: .tensor(elementType: elementType, shape: dims.map { .value($0) }), denotation: declared?.denotation)
        input.info = info
        input.inferred = nil
    }
}

/// Writes what inference found into `value_info` for every node output of every graph that is
/// not a graph output (graph outputs keep what they declare): element type and shape, with
/// symbols as `dim_param`. Values whose type is not known are left as they are. Inference runs
/// anew first, so the facts are those of the model as it is now.
public func writeInferredValueInfo(_ model: Model, freezeInitializerInputs: Bool = false) {
    ShapeInference(model: model, freezeInitializerInputs: freezeInitializerInputs).run()
    for graph in model.allGraphs {
        var described = Set<ObjectIdentifier>()
        for entry in graph.valueInfo {
            if case .value(let value) = entry { described.insert(ObjectIdentifier(value)) }
        }
        for node in graph.nodes {
            for output in node.outputs {
                guard let output, !output.isGraphOutput, let facts = output.inferred, let type = facts.elementType else { continue }
                let inferredType = TypeInfo(kind: .tensor(elementType: type, shape: facts.shape))
                var info = output.info ?? ValueInfo(type: nil)
                if let old = info.type, old.description == inferredType.description { continue }
                info.type = inferredType
                output.info = info
                if described.insert(ObjectIdentifier(output)).inserted { graph.appendValueInfo(.value(output)) }
            }
        }
    }
}
