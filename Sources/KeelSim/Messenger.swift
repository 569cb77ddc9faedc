// The engine's dm message channel in the simulation.

import KeelCore

/// Sends dm-multipath messages to the world's simulated kernel. A thin handle over the world;
/// `send` allocates nothing (queued I/O it releases is scheduled in preallocated space).
public struct SimMessenger: MultipathMessenger {
    public let world: SimWorld

    public init(world: SimWorld) { self.world = world }

    /// Sends one message; 0 or the errno the simulated kernel answers.
    public mutating func send(_ message: DMMessage) -> Int32 { world.send(message) }
}
