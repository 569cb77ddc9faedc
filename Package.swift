// swift-tools-version: 6.0
// Keel: a multipath path-recovery daemon. See README.md.
import PackageDescription

/// The daemon's modules use neither Swift Regex nor Swift concurrency: without their implicit
/// imports keeld does not load (and mlockall does not pin) libswift_StringProcessing,
/// libswift_RegexParser, libswift_Concurrency and libdispatch, about 3 MB.
let leanRuntime: [SwiftSetting] = [.unsafeFlags(["-Xfrontend", "-disable-implicit-string-processing-module-import",
                                                 "-Xfrontend", "-disable-implicit-concurrency-module-import"])]

let package = Package(
    name: "keel",
    products: [
        .library(name: "KeelCore", targets: ["KeelCore"]),
        .library(name: "KeelSim", targets: ["KeelSim"]),
        .library(name: "KeelLinux", targets: ["KeelLinux"]),
        .executable(name: "keel-torture", targets: ["keel-torture"]),
        .executable(name: "keeld", targets: ["keeld"]),
        .executable(name: "keel-fuzz", targets: ["keel-fuzz"]),
        .executable(name: "keelctl", targets: ["keelctl"]),
        .executable(name: "keel-path-claim", targets: ["keel-path-claim"]),
    ],
    dependencies: [
        // keelctl's command line (the daemon itself uses no package outside this one).
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
    ],
    targets: [
        // Pure engine: model, state machine, policies, rings, codecs, config. No Foundation, no syscalls.
        .target(name: "KeelCore", path: "Sources/KeelCore", swiftSettings: leanRuntime),
        // System libraries (Debian: libdevmapper-dev, libudev-dev, libaio-dev, pkg-config).
        .systemLibrary(name: "CDeviceMapper", path: "Sources/CDeviceMapper", pkgConfig: "devmapper", providers: [.apt(["libdevmapper-dev"])]),
        .systemLibrary(name: "CUdev", path: "Sources/CUdev", pkgConfig: "libudev", providers: [.apt(["libudev-dev"])]),
        .systemLibrary(name: "CAio", path: "Sources/CAio", providers: [.apt(["libaio-dev"])]),
        // C for macros, _GNU_SOURCE symbols and ioctl structures Swift cannot import directly.
        .target(name: "CKeelShim", path: "Sources/CKeelShim"),
        // The real kernel: device-mapper, udev, sysfs discovery, checkers, prioritizers.
        .target(name: "KeelLinux", dependencies: ["KeelCore", "CDeviceMapper", "CUdev", "CAio", "CKeelShim"], path: "Sources/KeelLinux",
                swiftSettings: leanRuntime),
        // Deterministic simulated kernel and SAN implementing the backend protocols.
        // The simulated world only (no daemon code is specialised in it): its model's run-time
        // exclusivity checks were a fifth of a torture run's time. The daemon's code, also where
        // the torture specialises it, keeps them.
        .target(name: "KeelSim", dependencies: ["KeelCore"], path: "Sources/KeelSim",
                swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]),
        // Torture runner: scenarios x seeds with invariants checked every step.
        // It drives keeld's recovery service (KeelLinux/Daemon) with the simulated backends.
        .executableTarget(name: "keel-torture", dependencies: ["KeelCore", "KeelSim", "KeelLinux"], path: "Stress/keel-torture"),
        .executableTarget(name: "keeld", dependencies: ["KeelCore", "KeelLinux"], path: "Sources/keeld", swiftSettings: leanRuntime),
        // The operator's client: tables, JSON, top; KeelCtl reads and renders the answers.
        .target(name: "KeelCtl", dependencies: ["KeelCore"], path: "Sources/KeelCtl"),
        // udev's helper for the rules in Tools/udev/: is this device a path of a multipath map?
        .executableTarget(name: "keel-path-claim", dependencies: ["KeelCore", "KeelLinux"], path: "Sources/keel-path-claim", swiftSettings: leanRuntime),
        .executableTarget(name: "keelctl", dependencies: ["KeelCtl", "KeelLinux", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "Sources/keelctl"),
        // Fuzz targets for every parser of outside input: libFuzzer (-sanitize=fuzzer, -D KEEL_LIBFUZZER)
        // or the built-in replay and mutation driver. The corpus is kept beside it.
        .executableTarget(name: "keel-fuzz", dependencies: ["KeelCore", "KeelLinux"], path: "Stress/keel-fuzz",
                          exclude: ["Corpus"]),
        .testTarget(name: "KeelCoreTests", dependencies: ["KeelCore"], path: "Tests/KeelCoreTests"),
        .testTarget(name: "KeelCtlTests", dependencies: ["KeelCtl", "KeelCore"], path: "Tests/KeelCtlTests"),
        .testTarget(name: "KeelSimTests", dependencies: ["KeelCore", "KeelSim"], path: "Tests/KeelSimTests"),
        // Host-kernel tests: loop devices, libaio, uevents, sysfs fixtures.
        .testTarget(name: "KeelLinuxTests", dependencies: ["KeelCore", "KeelLinux"], path: "Tests/KeelLinuxTests"),
        // Real-kernel tests: run inside the VM by Tools/kernel-tests (dm-multipath, scsi_debug).
        .testTarget(name: "KeelKernelTests", dependencies: ["KeelCore", "KeelLinux"], path: "Tests/KeelKernelTests"),
        // The allocation tests' malloc: counts calls, no per-thread state (test-only).
        .target(name: "CKeelMallocCounter", path: "Tests/CKeelMallocCounter"),
        // Release-mode zero-allocation tests; run alone (process-wide counters): Tools/test does.
        .testTarget(
            name: "KeelAllocationTests",
            dependencies: ["KeelCore", "KeelSim", "KeelLinux", "CKeelMallocCounter"],
            path: "Tests/KeelAllocationTests"
        ),
    ],
    swiftLanguageModes: [.v6]
)
