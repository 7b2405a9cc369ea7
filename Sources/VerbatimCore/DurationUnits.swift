/// A `Duration` as the plain numbers that clocks, condition variables and counters take.
extension Duration {
    /// The duration in seconds (what `Date(timeIntervalSinceNow:)` and timeouts take).
    package var inSeconds: Double {
        let (whole, attoseconds) = components
        return Double(whole) + Double(attoseconds) * 1e-18
    }

    /// The duration in whole nanoseconds, truncated toward zero (for integer counters).
    package var wholeNanoseconds: Int64 {
        let (whole, attoseconds) = components
        return whole * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
