// Growing every per-path and per-map table together, off the recovery thread.
import KeelCore

/// The sizes of keeld's tables and how they grow. At start they are sized from discovery
/// (`TableSizing`: twice what was found, at least 64 paths and 16 maps); the configured
/// `max_paths` / `max_maps` are ceilings, reserved as addresses but not as memory.
///
/// When the engine refuses a path or map because its table is full, the thread that asked (the
/// events thread) calls `grow`: every table is prepared for twice the size (memory committed,
/// locked and cleared by each preparer, in place), then the caller sends `RecoveryInput.adopt`
/// through the input ring and asks again. The recovery thread only links the new handles into its
/// free lists; it never allocates, copies or frees.
public final class TableGrowth: @unchecked Sendable {
    public let ceilings: Capacities
    /// Paths and maps every table has been prepared for.
    public private(set) var paths: Int
    public private(set) var maps: Int
    /// How many times the tables grew.
    public private(set) var growths = 0
    private let preparers: [(Int, Int) -> Void]

    /// - Parameter preparers: each makes its tables ready for (paths, maps); called in order.
    public init(ceilings: Capacities, paths: Int, maps: Int, preparers: [(Int, Int) -> Void]) {
        self.ceilings = ceilings
        self.paths = min(paths, ceilings.pathsMax)
        self.maps = min(maps, ceilings.mapsMax)
        self.preparers = preparers
    }

    /// Doubles the paths (and the maps with them when `maps` is set), up to the ceilings. Returns
    /// the new sizes, or nil when the ceiling is already reached.
    public func grow(paths growPaths: Bool, maps growMaps: Bool) -> (paths: Int, maps: Int)? {
        let newPaths = growPaths ? min(max(paths * 2, TableSizing.pathsFloor), ceilings.pathsMax) : paths
        let newMaps = growMaps ? min(max(maps * 2, TableSizing.mapsFloor), ceilings.mapsMax) : maps
        guard newPaths > paths || newMaps > maps else { return nil }
        for prepare in preparers { prepare(newPaths, newMaps) }
        paths = newPaths
        maps = newMaps
        growths += 1
        return (newPaths, newMaps)
    }
}

/// What one more path or map slot costs in keeld's growable tables (committed, locked memory).
public enum TableFootprint {
    /// Engine records, wheel entry, loop buffers, the board's state byte, the checker's kind and
    /// immediate verdict, and both checkers' slots (tur and directio; a directio path adds its
    /// read buffer, `DirectIOChecker.bytesPerRegisteredPath`).
    public static var bytesPerPath: Int {
        EngineArenas.bytesPerPath + 1 + 1 + MemoryLayout<CheckCompletion>.stride
            + TURChecker.bytesPerPath + DirectIOChecker.bytesPerPath
    }

    /// Engine records and wheel entry, the board's flags, and two dm ioctl headers (messenger and
    /// status reader; each a page slice committed at registration).
    public static var bytesPerMap: Int { EngineArenas.bytesPerMap + 1 + 2 * DMMessenger.headerBytes }
}
