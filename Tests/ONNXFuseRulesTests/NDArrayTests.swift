import XCTest
import ONNXFuseOps
@testable import ONNXFuseRules

/// Arithmetic, broadcasting and shape operations of `NDArray`, against hand-computed results.
final class NDArrayTests: XCTestCase {
    /// The message of the error `body` throws, or a failure when it does not throw.
    private func message(
        _ body: () throws(EvaluationError) -> NDArray, file: StaticString = #filePath, line: UInt = #line
    ) -> String {
        do {
            let result = try body()
            XCTFail("expected an error, got \(result)", file: file, line: line)
            return ""
        } catch {
            return error.message
        }
    }

    private func array(_ shape: [Int], _ values: [Double]) -> NDArray { NDArray(shape: shape, values: values) }

    // MARK: Construction

    func testConstructionAndProperties() {
        let a = array([2, 3], [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(a.rank, 2)
        XCTAssertEqual(a.count, 6)
        XCTAssertEqual(NDArray.scalar(2.5), array([], [2.5]))
        XCTAssertEqual(NDArray.scalar(2.5).rank, 0)
        XCTAssertEqual(NDArray([1, 2]), array([2], [1, 2]))
        XCTAssertEqual(a.zerosLike(), array([2, 3], [0, 0, 0, 0, 0, 0]))
        XCTAssertEqual(a.onesLike(), array([2, 3], [1, 1, 1, 1, 1, 1]))
        XCTAssertEqual(array([0, 4], []).onesLike(), array([0, 4], []))
        XCTAssertEqual(array([2], [1, 2]).description, "NDArray([2]: [1.0, 2.0])")
        XCTAssertEqual(NDArray(shape: [17], values: Array(repeating: 0, count: 17)).description,
                       "NDArray([17]: " + Array(repeating: "0.0", count: 16).joined(separator: ", ") + ", ...)")
    }

    func testIsFinite() {
        XCTAssertTrue(array([2], [1, -1e308]).isFinite)
        XCTAssertTrue(array([0], []).isFinite)
        XCTAssertFalse(array([2], [1, .infinity]).isFinite)
        XCTAssertFalse(array([2], [-.infinity, 1]).isFinite)
        XCTAssertFalse(array([1], [.nan]).isFinite)
        // Once stored as float: what overflows it, wherever it is in a long array.
        var values = [Double](repeating: 0.5, count: 1_000)
        XCTAssertTrue(array([1_000], values).isFinite(storedAs: .float))
        for (position, bad) in [(0, 3.5e38), (517, -1e39), (999, Double.nan), (3, -Double.infinity)] {
            values[position] = bad
            XCTAssertFalse(array([1_000], values).isFinite(storedAs: .float), "\(bad) at \(position)")
            XCTAssertEqual(array([1_000], values).isFinite, bad.isFinite)
            values[position] = 0.5
        }
        XCTAssertTrue(array([2], [3.4e38, -Double(Float.leastNonzeroMagnitude)]).isFinite(storedAs: .float))
    }

    // MARK: Broadcasting

    func testBroadcastShapes() throws {
        XCTAssertEqual(try NDArray.broadcastShape([2, 3], [3]), [2, 3])
        XCTAssertEqual(try NDArray.broadcastShape([4], [4, 1, 1, 1]), [4, 1, 1, 4])
        XCTAssertEqual(try NDArray.broadcastShape([4, 1, 1, 1], [4]), [4, 1, 1, 4])
        XCTAssertEqual(try NDArray.broadcastShape([2, 1], [1, 3]), [2, 3])
        XCTAssertEqual(try NDArray.broadcastShape([], [2, 2]), [2, 2])
        XCTAssertEqual(try NDArray.broadcastShape([8, 1, 6, 1], [7, 1, 5]), [8, 7, 6, 5])  // numpy docs
        XCTAssertEqual(try NDArray.broadcastShape([0, 3], [1, 3]), [0, 3])
        XCTAssertEqual(try NDArray.broadcastShape([1], [0]), [0])
        XCTAssertEqual(message { () throws(EvaluationError) in try array([3], [1, 2, 3]) + array([4], [1, 2, 3, 4]) },
                       "cannot broadcast shapes [3] and [4]")
        // Alignment is on the right: [2] does not match the trailing 3 of [2, 3].
        XCTAssertEqual(message { () throws(EvaluationError) in try array([2, 3], [1, 2, 3, 4, 5, 6]) * array([2], [1, 2]) },
                       "cannot broadcast shapes [2, 3] and [2]")
        XCTAssertThrowsError(try NDArray.broadcastShape([0], [3]))
    }

    /// A per-channel vector [4] against [4, 1, 1, 1] is NOT a per-channel operation: it
    /// broadcasts to [4, 1, 1, 4] (which is why rules reshape the vector first).
    func testVectorAgainstChannelShape() throws {
        let vector = array([4], [1, 2, 3, 4])
        let column = array([4, 1, 1, 1], [10, 20, 30, 40])
        let sum = try vector + column
        XCTAssertEqual(sum.shape, [4, 1, 1, 4])
        XCTAssertEqual(sum.values, [11, 12, 13, 14, 21, 22, 23, 24, 31, 32, 33, 34, 41, 42, 43, 44])
        XCTAssertEqual(try column + vector, sum)
        // Reshaped to [4, 1, 1, 1] it is per channel.
        XCTAssertEqual(try vector.reshape([4, 1, 1, 1]) * column, array([4, 1, 1, 1], [10, 40, 90, 160]))
    }

    func testArithmeticWithBroadcasting() throws {
        let m = array([2, 3], [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try m + array([3], [10, 20, 30]), array([2, 3], [11, 22, 33, 14, 25, 36]))
        XCTAssertEqual(try m - array([2, 1], [1, 2]), array([2, 3], [0, 1, 2, 2, 3, 4]))
        XCTAssertEqual(try m * .scalar(2), array([2, 3], [2, 4, 6, 8, 10, 12]))
        XCTAssertEqual(try NDArray.scalar(12) / array([3], [1, 2, 3]), array([3], [12, 6, 4]))
        XCTAssertEqual(try array([2, 1], [1, 2]) * array([1, 3], [1, 10, 100]), array([2, 3], [1, 10, 100, 2, 20, 200]))
        XCTAssertEqual(try m / m, array([2, 3], [1, 1, 1, 1, 1, 1]))
        // Middle-axis broadcasting: [2, 1, 2] with [3, 1].
        let a = array([2, 1, 2], [1, 2, 3, 4])
        let b = array([3, 1], [10, 20, 30])
        XCTAssertEqual(try a + b, array([2, 3, 2], [11, 12, 21, 22, 31, 32, 13, 14, 23, 24, 33, 34]))
        // Zero-sized results.
        XCTAssertEqual(try array([0, 3], []) + array([1, 3], [1, 2, 3]), array([0, 3], []))
        XCTAssertEqual(try array([], [5]) - array([], [7]), .scalar(-2))
        // IEEE division.
        let q = try array([3], [1, -1, 0]) / .scalar(0)
        XCTAssertEqual(q.values[0], .infinity)
        XCTAssertEqual(q.values[1], -.infinity)
        XCTAssertTrue(q.values[2].isNaN)
    }

    /// The run-based broadcasting loop against element-by-element indexing, over shapes that
    /// mix missing, stretched and full axes (a fixed pseudo-random sequence).
    func testBroadcastingRunsAgreeWithIndexing() throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        for _ in 0..<400 {
            let target = (0..<next(5)).map { _ in [1, 2, 3, 5][next(4)] }
            func operand() -> [Int] {
                let dropped = next(target.count + 1)
                return target.dropFirst(dropped).map { next(3) == 0 ? 1 : $0 }
            }
            let (leftShape, rightShape) = (operand(), operand())
            let left = NDArray(shape: leftShape, values: (0..<leftShape.reduce(1, *)).map { Double($0) + 0.5 })
            let right = NDArray(shape: rightShape, values: (0..<rightShape.reduce(1, *)).map { Double($0 * 7) })
            let shape = try NDArray.broadcastShape(leftShape, rightShape)
            let l = NDArray.broadcastIndices(from: leftShape, to: shape)
            let r = NDArray.broadcastIndices(from: rightShape, to: shape)
            let expected = zip(l, r).map { left.values[$0] * 1_000 - right.values[$1] }
            let result = try NDArray.elementwise(left, right) { $0 * 1_000 - $1 }
            XCTAssertEqual(result.shape, shape, "\(leftShape) and \(rightShape)")
            XCTAssertEqual(result.values, expected, "\(leftShape) and \(rightShape)")
        }
    }

    func testUnary() {
        XCTAssertEqual(array([3], [4, 2.25, 0]).sqrt(), array([3], [2, 1.5, 0]))
        XCTAssertTrue(array([1], [-1]).sqrt().values[0].isNaN)
        XCTAssertEqual(array([3], [-3, 0, 2.5]).abs(), array([3], [3, 0, 2.5]))
        XCTAssertEqual(array([2], [-3, 2.5]).neg(), array([2], [3, -2.5]))
        XCTAssertEqual(-array([2], [-3, 2.5]), array([2], [3, -2.5]))
        XCTAssertEqual(array([2], [0, 1]).exp(), array([2], [1, 2.718281828459045]))
        XCTAssertEqual(array([3], [1, 0, 2.718281828459045]).log(), array([3], [0, -.infinity, 1]))
        XCTAssertEqual(array([3], [2, -4, 0]).reciprocal(), array([3], [0.5, -0.25, .infinity]))
        XCTAssertEqual(array([2, 1], [1, 4]).sqrt().shape, [2, 1])
    }

    // MARK: Shapes

    func testReshape() throws {
        let m = array([2, 3], [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try m.reshape([3, 2]), array([3, 2], [1, 2, 3, 4, 5, 6]))
        XCTAssertEqual(try m.reshape([3, -1]).shape, [3, 2])
        XCTAssertEqual(try m.reshape([-1]).shape, [6])
        XCTAssertEqual(try m.reshape([1, -1, 1]).shape, [1, 6, 1])
        XCTAssertEqual(try NDArray.scalar(3).reshape([1, 1]).shape, [1, 1])
        XCTAssertEqual(try array([1], [3]).reshape([]).shape, [])
        XCTAssertEqual(try array([0, 2], []).reshape([2, 0, 5]).shape, [2, 0, 5])
        XCTAssertEqual(message { () throws(EvaluationError) in try m.reshape([4]) },
                       "cannot reshape [2, 3] (6 elements) to [4] (4 elements)")
        XCTAssertEqual(message { () throws(EvaluationError) in try m.reshape([0, 6]) },
                       "cannot reshape [2, 3] (6 elements) to [0, 6] (0 elements)")
        XCTAssertEqual(message { () throws(EvaluationError) in try m.reshape([-1, -1]) },
                       "reshape to [-1, -1]: only one dimension may be -1")
        XCTAssertEqual(message { () throws(EvaluationError) in try m.reshape([-2, 3]) },
                       "reshape to [-2, 3]: dimension -2 is negative")
        XCTAssertEqual(message { () throws(EvaluationError) in try m.reshape([4, -1]) },
                       "cannot reshape [2, 3] (6 elements) to [4, -1]")
        XCTAssertEqual(message { () throws(EvaluationError) in try m.reshape([0, -1]) },
                       "cannot reshape [2, 3] (6 elements) to [0, -1]")
    }

    func testUnsqueeze() throws {
        let v = array([3], [1, 2, 3])
        XCTAssertEqual(try v.unsqueeze(axes: [0]), array([1, 3], [1, 2, 3]))
        XCTAssertEqual(try v.unsqueeze(axes: [1]).shape, [3, 1])
        XCTAssertEqual(try v.unsqueeze(axes: [-1]).shape, [3, 1])
        XCTAssertEqual(try v.unsqueeze(axes: [1, -1]).shape, [3, 1, 1])
        XCTAssertEqual(try v.unsqueeze(axes: [1, 2, 3]).shape, [3, 1, 1, 1])
        XCTAssertEqual(try v.unsqueeze(axes: []).shape, [3])
        // The ONNX Unsqueeze example: [3, 4, 5] with axes [2, 4, 5] gives [3, 4, 1, 5, 1, 1].
        XCTAssertEqual(try array([3, 4, 5], Array(repeating: 0, count: 60)).unsqueeze(axes: [2, 4, 5]).shape, [3, 4, 1, 5, 1, 1])
        XCTAssertEqual(try array([3, 4, 5], Array(repeating: 0, count: 60)).unsqueeze(axes: [5, 4, 2]).shape, [3, 4, 1, 5, 1, 1])
        XCTAssertEqual(try NDArray.scalar(7).unsqueeze(axes: [0]), array([1], [7]))
        XCTAssertEqual(message { () throws(EvaluationError) in try v.unsqueeze(axes: [2]) },
                       "unsqueeze axis 2 is out of range for rank 2")
        XCTAssertEqual(message { () throws(EvaluationError) in try v.unsqueeze(axes: [-3]) },
                       "unsqueeze axis -3 is out of range for rank 2")
        XCTAssertEqual(message { () throws(EvaluationError) in try v.unsqueeze(axes: [0, -3]) },
                       "unsqueeze axes [0, -3] name axis 0 twice")
    }

    func testSqueeze() throws {
        let a = array([1, 3, 1, 2], [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try a.squeeze(), array([3, 2], [1, 2, 3, 4, 5, 6]))
        XCTAssertEqual(try a.squeeze(axes: [0]).shape, [3, 1, 2])
        XCTAssertEqual(try a.squeeze(axes: [-2]).shape, [1, 3, 2])
        XCTAssertEqual(try a.squeeze(axes: [2, 0]).shape, [3, 2])
        XCTAssertEqual(try a.squeeze(axes: []).shape, [1, 3, 1, 2])
        XCTAssertEqual(try array([1, 1], [5]).squeeze(), .scalar(5))
        XCTAssertEqual(message { () throws(EvaluationError) in try a.squeeze(axes: [1]) },
                       "cannot squeeze axis 1 of shape [1, 3, 1, 2]: its size is 3, not 1")
        XCTAssertEqual(message { () throws(EvaluationError) in try a.squeeze(axes: [4]) },
                       "squeeze axis 4 is out of range for rank 4")
        XCTAssertEqual(message { () throws(EvaluationError) in try a.squeeze(axes: [0, -4]) },
                       "squeeze axes [0, -4] name axis 0 twice")
    }

    func testTranspose() throws {
        let m = array([2, 3], [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try m.transpose(), array([3, 2], [1, 4, 2, 5, 3, 6]))
        XCTAssertEqual(try m.transpose([1, 0]), array([3, 2], [1, 4, 2, 5, 3, 6]))
        XCTAssertEqual(try m.transpose([0, 1]), m)
        XCTAssertEqual(try m.transpose([-1, 0]), array([3, 2], [1, 4, 2, 5, 3, 6]))
        // t[a, b, c] = 4a + 2b + c.
        let t = array([2, 2, 2], [0, 1, 2, 3, 4, 5, 6, 7])
        // out[i, j, k] = t[j, k, i] = 4j + 2k + i.
        XCTAssertEqual(try t.transpose([2, 0, 1]), array([2, 2, 2], [0, 2, 4, 6, 1, 3, 5, 7]))
        // Reversed: out[i, j, k] = t[k, j, i] = 4k + 2j + i.
        XCTAssertEqual(try t.transpose(), array([2, 2, 2], [0, 4, 2, 6, 1, 5, 3, 7]))
        // Non-square: [2, 3, 1] with perm [1, 2, 0] gives [3, 1, 2]; out[i, 0, k] = m[k, i].
        XCTAssertEqual(try m.reshape([2, 3, 1]).transpose([1, 2, 0]), array([3, 1, 2], [1, 4, 2, 5, 3, 6]))
        XCTAssertEqual(try NDArray.scalar(3).transpose(), .scalar(3))
        XCTAssertEqual(try array([0, 2], []).transpose().shape, [2, 0])
        XCTAssertEqual(message { () throws(EvaluationError) in try m.transpose([0]) },
                       "transpose permutation [0] does not match rank 2 of shape [2, 3]")
        XCTAssertEqual(message { () throws(EvaluationError) in try m.transpose([1, 1]) },
                       "transpose axes [1, 1] name axis 1 twice")
        XCTAssertEqual(message { () throws(EvaluationError) in try m.transpose([0, 2]) },
                       "transpose axis 2 is out of range for rank 2")
    }

    func testMatmul() throws {
        let a = array([2, 3], [1, 2, 3, 4, 5, 6])
        let b = array([3, 2], [7, 8, 9, 10, 11, 12])
        XCTAssertEqual(try a.matmul(b), array([2, 2], [58, 64, 139, 154]))
        XCTAssertEqual(try b.matmul(a), array([3, 3], [39, 54, 69, 49, 68, 87, 59, 82, 105]))
        // 1-D with 1-D: the dot product, rank 0.
        XCTAssertEqual(try array([3], [1, 2, 3]).matmul(array([3], [4, 5, 6])), .scalar(32))
        // 1-D on the left is a row vector, removed from the result.
        XCTAssertEqual(try array([2], [1, 2]).matmul(a), array([3], [9, 12, 15]))
        // 1-D on the right is a column vector, removed from the result.
        XCTAssertEqual(try a.matmul(array([3], [1, 0, -1])), array([2], [-2, -2]))
        // Batched: [2, 1, 2] x [2, 1] broadcasts the matrix over the batch.
        XCTAssertEqual(try array([2, 1, 2], [1, 2, 3, 4]).matmul(array([2, 1], [10, 1])), array([2, 1, 1], [12, 34]))
        // Batch dimensions broadcast: [2, 1, 1, 2] x [3, 2, 1] gives [2, 3, 1, 1].
        let left = array([2, 1, 1, 2], [1, 2, 3, 4])
        let right = array([3, 2, 1], [1, 0, 0, 1, 1, 1])
        XCTAssertEqual(try left.matmul(right), array([2, 3, 1, 1], [1, 2, 3, 3, 4, 7]))
        // 1-D with a batch: [2] x [2, 2, 1] gives [2, 1].
        XCTAssertEqual(try array([2], [1, 2]).matmul(array([2, 2, 1], [1, 1, 2, 3])), array([2, 1], [3, 8]))
        // Empty inner dimension: zeros.
        XCTAssertEqual(try array([2, 0], []).matmul(array([0, 2], [])), array([2, 2], [0, 0, 0, 0]))
        XCTAssertEqual(message { () throws(EvaluationError) in try a.matmul(a) },
                       "matmul of shapes [2, 3] and [2, 3]: inner dimensions 3 and 2 differ")
        XCTAssertEqual(message { () throws(EvaluationError) in try NDArray.scalar(2).matmul(a) },
                       "matmul needs operands of rank 1 or more, got shapes [] and [2, 3]")
        XCTAssertEqual(message { () throws(EvaluationError) in try array([2, 1, 2], [1, 2, 3, 4]).matmul(array([3, 2, 1], [1, 2, 3, 4, 5, 6])) },
                       "matmul of shapes [2, 1, 2] and [3, 2, 1]: batch dimensions [2] and [3] do not broadcast")
    }

    /// Broadcasting through `broadcastIndices` agrees with a direct index computation on
    /// seeded random shapes.
    func testBroadcastAgreesWithDirectIndexing() throws {
        var generator = SeededRandom(seed: 0x5EED)
        for round in 0..<300 {
            let rank = Int.random(in: 0...4, using: &generator)
            let target = (0..<rank).map { _ in Int.random(in: 1...3, using: &generator) }
            func operand() -> [Int] {
                let dropped = Int.random(in: 0...rank, using: &generator)
                return target.dropFirst(dropped).map { Bool.random(using: &generator) ? 1 : $0 }
            }
            let (sa, sb) = (operand(), operand())
            let a = NDArray(shape: sa, values: (0..<NDArray.elementCount(sa)!).map { Double($0) })
            let b = NDArray(shape: sb, values: (0..<NDArray.elementCount(sb)!).map { Double($0) * 100 })
            let sum = try a + b
            let shape = try NDArray.broadcastShape(sa, sb)
            XCTAssertEqual(sum.shape, shape, "round \(round)")
            for flat in 0..<sum.count {
                var rest = flat
                var index = Array(repeating: 0, count: shape.count)
                for axis in shape.indices.reversed() {
                    index[axis] = rest % shape[axis]
                    rest /= shape[axis]
                }
                func read(_ x: NDArray) -> Double {
                    var offset = 0
                    for (axis, dim) in x.shape.enumerated() {
                        offset = offset * dim + (dim == 1 ? 0 : index[axis + shape.count - x.rank])
                    }
                    return x.values[offset]
                }
                XCTAssertEqual(sum.values[flat], read(a) + read(b), "round \(round): \(sa) + \(sb) at \(index)")
            }
        }
    }
}
