// keel-fuzz's two entry points: libFuzzer's (built with -sanitize=fuzzer and -D KEEL_LIBFUZZER),
// and a replay/mutation driver for ordinary builds (CI's short pass, corpus regression).
import Glibc

#if KEEL_LIBFUZZER
/// The target libFuzzer drives, from KEEL_FUZZ_TARGET (read once).
nonisolated(unsafe) private var selectedTarget: FuzzTarget? = nil

@_cdecl("LLVMFuzzerTestOneInput")
public func keelFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    if selectedTarget == nil {
        let name = getenv("KEEL_FUZZ_TARGET").map { String(cString: $0) } ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            fputs("keel-fuzz: set KEEL_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n", stderr)
            exit(2)
        }
        selectedTarget = target
    }
    selectedTarget!.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
#else
@main
struct KeelFuzzDriver {
    static func main() {
        exit(FuzzDriver.run(Array(CommandLine.arguments.dropFirst())))
    }
}
#endif
