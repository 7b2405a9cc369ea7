/// The engine's scheduling policy for one step: which prompt chunks fill the rows that decode
/// leaves free. Every running request's next decode token goes first (the engine worker adds
/// them); prompt rows follow in the configured order up to the step's token budget.
///
/// No policy changes a bit of any output (the kernels are batch-invariant): a policy only
/// decides who waits. The invariance tests run under each one.
struct Scheduler {
    let order: PrefillOrder
    /// Steps a prefilling request may be passed over before it goes first (`.shortestFirst`).
    let maxPrefillDelaySteps: Int

    init(_ configuration: EngineConfiguration) {
        order = configuration.prefillOrder
        maxPrefillDelaySteps = configuration.maxPrefillDelaySteps
    }

    /// Puts `prefilling` (in admission order on entry) in the order the policy serves it.
    func arrange(_ prefilling: inout [EngineRequest]) {
        guard order == .shortestFirst else { return }   // firstCome and roundRobin keep admission order
        // Fewest prompt tokens left first; one passed over for maxPrefillDelaySteps steps goes
        // before them (oldest first), so a long prompt is never starved.
        let limit = maxPrefillDelaySteps
        prefilling.sort { a, b in
            let (starvedA, starvedB) = (a.prefillDelay >= limit, b.prefillDelay >= limit)
            if starvedA != starvedB { return starvedA }
            let (leftA, leftB) = (a.promptRowsLeft, b.promptRowsLeft)
            return starvedA || leftA == leftB ? a.sequence < b.sequence : leftA < leftB
        }
    }

    /// The prompt rows each of `prefilling` (arranged) gets from `free` rows, into `rows`
    /// (reused: no allocation per step). In order, each takes what it can; round robin gives
    /// each an even share, then what some could not use to the rest.
    func share(_ free: Int, among prefilling: [EngineRequest], into rows: inout [Int]) {
        rows.removeAll(keepingCapacity: true)
        rows.append(contentsOf: repeatElement(0, count: prefilling.count))
        var left = free
        if order != .roundRobin {
            for (i, r) in prefilling.enumerated() where left > 0 {
                rows[i] = min(r.promptRowsLeft, left)
                left -= rows[i]
            }
            return
        }
        var open = prefilling.count { $0.promptRowsLeft > 0 }
        while left > 0 && open > 0 {
            let even = max(1, left / open)
            for (i, r) in prefilling.enumerated() where left > 0 {
                let take = min(even, r.promptRowsLeft - rows[i], left)
                rows[i] += take
                left -= take
            }
            open = prefilling.indices.count { rows[$0] < prefilling[$0].promptRowsLeft }
        }
    }
}
