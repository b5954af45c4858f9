import ArgumentParser
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// `onnx-fuse evaluate MODEL -o DATA.onnx`: runs a model with the reference kernels on the
/// seeded inputs `--verify=model` uses and writes the inputs and outputs, so that another
/// runtime can be compared with the kernels (the conformance suite does, with onnxruntime).
struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "onnx-fuse evaluate",
        abstract: "Run a model with the reference kernels on seeded inputs and write the inputs and outputs.",
        discussion: """
            The inputs are those --verify=model uses: floats are multiples of 1/64 in [-2, 2], \
            integers 0 or 1 (indices into a table cover the table), symbolic dimensions small sizes. \
            DATA is an ONNX file whose initializers are the tensors, named after the model's graph \
            inputs and outputs; its graph outputs name the outputs. Nothing else is written.

            EXIT CODES: 0 done; 1 usage error; 2 invalid or unsupported model (also: the reference \
            kernels cannot run it); 3 I/O error; 4 a limit exceeded.
            """)

    @Argument(help: "The ONNX model to run.")
    var model: String

    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("Where to write the inputs and outputs.", valueName: "path"))
    var output: String

    @Option(help: ArgumentHelp("The seed of the inputs.", valueName: "n"))
    var seed: UInt64 = 1

    @Option(name: .customLong("input-shape"), help: ArgumentHelp("Fix the dimensions of a graph input, e.g. 'x=1,3,224,224' (repeatable).", valueName: "name=dims"))
    var inputShapes: [String] = []

    func validate() throws { _ = try parseInputShapes(inputShapes) }

    func run() throws {
        if ModelFile.isSameFile(model, output) {
            throw UsageError(message: "\(output): refusing to overwrite the input")
        }
        let loaded = try ModelFile.load(path: model)
        do {
            try setInputShapes(loaded, try parseInputShapes(inputShapes))
        } catch let error as InputShapeError {
            throw UsageError(message: "\(model): \(error.description)")
        }
        let evaluation: ModelEvaluation
        do {
            evaluation = try evaluateModel(loaded, seed: seed)
        } catch {
            throw ModelFileError.unsupported(file: model, reason: "the reference kernels cannot run it: \(error.description)")
        }
        let graph = Graph(name: "evaluation")
        let data = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        var written: [String: Value] = [:]
        for (name, value) in evaluation.inputs + evaluation.outputs where written[name] == nil {
            written[name] = graph.addInitializer(name: name, tensor: value.tensor())
        }
        for (name, _) in evaluation.outputs { try graph.addOutput(written[name]!, info: ValueInfo(type: nil)) }
        _ = try ModelFile.save(data, to: output)
        let sizes = evaluation.symbolSizes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
        printError("onnx-fuse: \(model) -> \(output): \(evaluation.inputs.count) inputs, \(evaluation.outputs.count) outputs"
            + (sizes.isEmpty ? "" : " (\(sizes))"))
    }
}
