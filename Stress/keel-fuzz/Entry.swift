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
            let text = "keel-fuzz: set KEEL_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n"
            _ = text.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
            exit(2)
        }
        selectedTarget = target
    }
    selectedTarget!.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

/// libFuzzer's driver (compiler-rt), called with the command line as its own `main` would be.
@_silgen_name("LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// The executable's entry (SwiftPM names an executable's `main` after its module): hands the
/// command line to libFuzzer.
@_cdecl("keel_fuzz_main")
func keelFuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var arguments = argv
    return llvmFuzzerRunDriver(&count, &arguments, keelFuzzOneInput)
}
#else
@main
struct KeelFuzzDriver {
    static func main() {
        exit(FuzzDriver.run(Array(CommandLine.arguments.dropFirst())))
    }
}
#endif
