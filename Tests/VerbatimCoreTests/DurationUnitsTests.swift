import Testing
@testable import VerbatimCore

@Suite("Duration units")
struct DurationUnitsTests {
    @Test("inSeconds keeps the fraction, also below a second and for negative durations")
    func inSeconds() {
        #expect(Duration.milliseconds(1500).inSeconds == 1.5)
        #expect(Duration.microseconds(250).inSeconds == 0.00025)
        #expect(Duration.milliseconds(-1500).inSeconds == -1.5)
        #expect(Duration.zero.inSeconds == 0)
    }

    @Test("whole nanoseconds truncate what is below a nanosecond, toward zero")
    func nanoseconds() {
        #expect(Duration.seconds(3).wholeNanoseconds == 3_000_000_000)
        #expect((Duration.nanoseconds(7) + .init(secondsComponent: 0, attosecondsComponent: 999_999_999)).wholeNanoseconds == 7)
        #expect(Duration.milliseconds(-1500).wholeNanoseconds == -1_500_000_000)
    }
}
