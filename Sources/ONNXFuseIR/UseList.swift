/// One use of a value: input `inputIndex` of `node`. It holds the node, so a use kept after its
/// model is gone still names a node that exists (one of no graph).
public struct Use: Hashable {
    /// The node that reads the value.
    public let node: Node
    /// Which of its inputs.
    public let inputIndex: Int

    /// A use.
    public init(node: Node, inputIndex: Int) {
        self.node = node
        self.inputIndex = inputIndex
    }

    /// Identity of the node and the index.
    public static func == (lhs: Use, rhs: Use) -> Bool { lhs.node === rhs.node && lhs.inputIndex == rhs.inputIndex }

    /// Hashes the node's identity and the index.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(ObjectIdentifier(node))
        hasher.combine(inputIndex)
    }
}

/// An input slot in a use list: the list's own form of a `Use`, which does not hold its node (a
/// list only ever names nodes of a graph, and a node leaves every list before it is freed, see
/// `Node.deinit`), so that linking and unlinking costs no reference counting.
struct UseSlot: Equatable {
    unowned(unsafe) let node: Node
    let inputIndex: Int

    static func == (lhs: UseSlot, rhs: UseSlot) -> Bool { lhs.node === rhs.node && lhs.inputIndex == rhs.inputIndex }

    /// The public form, which holds the node.
    var use: Use { Use(node: node, inputIndex: inputIndex) }

    /// Where this input slot sits in its value's use list.
    var link: UseLink {
        get { node.useLinks[inputIndex] }
        nonmutating set { node.useLinks[inputIndex] = newValue }
    }
}

/// The links of one input slot in the use list of the value it reads: the list is intrusive
/// (threaded through the reading nodes' slots), so adding or removing a use allocates nothing.
/// The first use's `previous` is the last use, which makes appending constant time without a
/// tail field on every value; the last use's `next` is nil. A slot that is not listed (its
/// node is outside a graph, or it reads nothing) has both nil.
struct UseLink {
    var previous: UseSlot?
    var next: UseSlot?

    /// Whether the slot is in a use list.
    var isListed: Bool { previous != nil }
}

extension Value {
    /// The uses of a value, first to last: a view that allocates nothing. It reads the list
    /// as it is when read (`Value.useList`); to change the uses while going through them, use
    /// `Value.uses`, a copy.
    public struct Uses: Sequence {
        /// The value, held so that a view kept a while still reads a list that exists.
        let value: Value

        /// The first use.
        public var first: Use? { value.firstUse?.use }
        /// How many uses there are.
        public var count: Int { value.useCount }

        /// Whether there are none.
        public var isEmpty: Bool { value.useCount == 0 }

        /// The last use.
        public var last: Use? { value.firstUse?.link.previous?.use }

        /// The number of uses.
        public var underestimatedCount: Int { count }

        /// An iterator from the first use.
        public func makeIterator() -> Iterator { Iterator(next: value.firstUse) }

        /// Follows the links from one use to the next.
        public struct Iterator: IteratorProtocol {
            // The next node held strongly: should the caller erase it meanwhile, its slot is
            // only unlinked (the walk ends there), never freed under the iterator. A list only
            // ever holds live nodes (`Node.deinit` takes a node's slots out).
            private var node: Node?
            private var inputIndex: Int

            init(next: UseSlot?) {
                node = next?.node
                inputIndex = next?.inputIndex ?? 0
            }

            /// The next use, or nil after the last.
            public mutating func next() -> Use? {
                guard let current = node else { return nil }
                let use = Use(node: current, inputIndex: inputIndex)
                if inputIndex < current.useLinks.count, let following = current.useLinks[inputIndex].next {
                    node = following.node
                    inputIndex = following.inputIndex
                } else {
                    node = nil
                }
                return use
            }
        }
    }

    /// Appends `use` to the list (its slot must be unlisted).
    func addUse(_ use: UseSlot) {
        if let first = firstUse {
            let last = first.link.previous!
            use.link = UseLink(previous: last, next: nil)
            last.link.next = use
            first.link.previous = use
        } else {
            use.link = UseLink(previous: use, next: nil)
            firstUse = use
        }
        useCount += 1
    }

    /// Removes `use` from the list as an array would by swapping it with the last element
    /// and dropping that: the last use takes its place. Readers visit uses in list order
    /// (the driver queues them so), so the order is the one the arrays used to have.
    func removeUse(_ use: UseSlot) {
        guard let first = firstUse, use.link.isListed else { preconditionFailure("value '\(name)' has no use \(use)") }
        useCount -= 1
        let last = first.link.previous!
        if last == first {
            firstUse = nil
            use.link = UseLink()
            return
        }
        // Take the last use off the end...
        let beforeLast = last.link.previous!
        beforeLast.link.next = nil
        first.link.previous = beforeLast
        let removed = use.link
        use.link = UseLink()
        if last == use { return }
        // ...and put it where the removed one was (a list of one points back at itself).
        last.link = UseLink(previous: removed.previous == use ? last : removed.previous, next: removed.next)
        if use == first { firstUse = last } else { removed.previous!.link.next = last }
        if let after = removed.next { after.link.previous = last } else { firstUse!.link.previous = last }
    }

    /// Whether `use` is listed: its slot reads this value and is linked in.
    func hasUse(_ use: UseSlot) -> Bool {
        use.inputIndex < use.node.inputs.count && use.node.inputs[use.inputIndex] === self
            && use.inputIndex < use.node.useLinks.count && use.link.isListed
    }
}
