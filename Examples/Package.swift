// swift-tools-version: 6.0
// A program that embeds Verbatim as a service would: the README's "Use it from Swift" code,
// compiled by the test command (scripts/test) so it cannot rot.
import PackageDescription

let package = Package(
    name: "VerbatimExamples",
    platforms: [.macOS(.v14)],
    dependencies: [.package(name: "Verbatim", path: "..")],
    targets: [
        .executableTarget(name: "Chat", dependencies: [.product(name: "Verbatim", package: "Verbatim")]),
    ]
)
