/// The `k` first elements of `values` in `order`, sorted: a bounded selection for small k
/// (top-k sampling, the top log-probabilities). Ties keep the order of `values`.
package func firstInOrder<Values: Sequence<Int32>>(_ k: Int, of values: Values, by order: (Int32, Int32) -> Bool) -> [Int32] {
    guard k > 0 else { return [] }
    var heap: [Int32] = []   // sorted, at most k, best first
    heap.reserveCapacity(k + 1)
    for v in values {
        if heap.count == k, let worst = heap.last, !order(v, worst) { continue }
        var lo = 0, hi = heap.count
        while lo < hi { let mid = (lo + hi) / 2; if order(heap[mid], v) { lo = mid + 1 } else { hi = mid } }
        heap.insert(v, at: lo)
        if heap.count > k { heap.removeLast() }
    }
    return heap
}
