/// `count` copies of `value`: what `Array(repeating:count:)` makes, without its allocation
/// through an unspecialized path of the standard library (it looks the array's type metadata up
/// at run time, several hundred instructions per array). Inference, the rule evaluator and the
/// matcher make such arrays for every node or match.
@inlinable
package func repeated<Element>(_ value: Element, count: Int) -> [Element] {
    (0..<count).map { _ in value }
}
