// swift-tools-version: 6.0
// Keel: a multipath path-recovery daemon. See README.md.
import PackageDescription

let package = Package(
    name: "keel",
    products: [
        .library(name: "KeelCore", targets: ["KeelCore"]),
        .library(name: "KeelSim", targets: ["KeelSim"]),
        .executable(name: "keel-torture", targets: ["keel-torture"]),
    ],
    dependencies: [
        // Counts malloc calls inside the allocation tests (test-only).
        .package(url: "https://github.com/ordo-one/malloc-interposer.git", from: "1.6.1"),
    ],
    targets: [
        // Pure engine: model, state machine, policies, rings, codecs, config. No Foundation, no syscalls.
        .target(name: "KeelCore", path: "Sources/KeelCore"),
        // Deterministic simulated kernel and SAN implementing the backend protocols.
        .target(name: "KeelSim", dependencies: ["KeelCore"], path: "Sources/KeelSim"),
        // Torture runner: scenarios x seeds with invariants checked every step.
        .executableTarget(name: "keel-torture", dependencies: ["KeelCore", "KeelSim"], path: "Stress/keel-torture"),
        .testTarget(name: "KeelCoreTests", dependencies: ["KeelCore"], path: "Tests/KeelCoreTests"),
        .testTarget(name: "KeelSimTests", dependencies: ["KeelCore", "KeelSim"], path: "Tests/KeelSimTests"),
        // Release-mode zero-allocation tests; run alone (process-wide counters): Tools/test does.
        .testTarget(
            name: "KeelAllocationTests",
            dependencies: [
                "KeelCore", "KeelSim",
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
            ],
            path: "Tests/KeelAllocationTests"
        ),
    ],
    swiftLanguageModes: [.v6]
)
