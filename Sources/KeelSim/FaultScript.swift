// Fault scripts: condition changes applied to the SAN at virtual times, and builders for the usual ones.

import KeelCore

/// One change to the SAN.
public enum FaultAction: Sendable, Equatable {
    /// Every path through this host (initiator port) sees the condition.
    case setHost(Int, PathCondition)
    /// Every path through this target port sees the condition.
    case setTargetPort(Int, PathCondition)
    /// One path's own condition.
    case setPath(DevNo, PathCondition)
    /// A target port's ALUA state.
    case setAlua(targetPort: Int, AluaState)
    /// The path's device disappears: checks report `.removed`, I/O errors, and the world records
    /// a topology change. The kernel keeps the device in any table that holds it until a reload.
    case removePath(DevNo)
    /// A removed path's device comes back (the same device number); recorded as a topology change.
    case addPath(DevNo)
    /// The LUN's store acknowledges the next `count` writes without storing them (a fault
    /// that exists to prove the workload's lost-write detector).
    case dropWrites(lun: Int, count: Int)
    /// The LUN's store returns a stamp nobody wrote for the next `count` reads (to prove the
    /// corruption detector).
    case corruptReads(lun: Int, count: Int)
    /// The kernel refuses the next `count` table loads with `errno` (EBUSY while a device is
    /// opened exclusively, ENOMEM under memory pressure).
    case refuseLoads(count: Int, errno: Int32)
}

/// A fault action at a virtual time.
public struct FaultStep: Sendable, Equatable {
    public var atNs: Nanoseconds
    public var action: FaultAction
    public init(atNs: Nanoseconds, _ action: FaultAction) {
        self.atNs = atNs
        self.action = action
    }
}

/// A timeline of fault actions. Steps at the same time apply in the order they appear.
public struct FaultScript: Sendable, Equatable {
    public var steps: [FaultStep]

    public init(_ steps: [FaultStep] = []) { self.steps = steps }

    /// Appends one step.
    public mutating func add(atNs: Nanoseconds, _ action: FaultAction) {
        steps.append(FaultStep(atNs: atNs, action))
    }

    /// Both scripts' steps; at equal times the left script's come first.
    public static func + (lhs: FaultScript, rhs: FaultScript) -> FaultScript {
        FaultScript(lhs.steps + rhs.steps)
    }

    /// When the last step happens (0 for an empty script).
    public var endNs: Nanoseconds { steps.map(\.atNs).max() ?? 0 }

    // MARK: - Builders

    /// An array's non-disruptive upgrade: every port of `array` goes offline at `startNs`;
    /// after `outageNs` the ports come back one at a time, port k of the array at
    /// `startNs + outageNs + k × portReturnSpacingNs`.
    public static func arrayNDU(array: Int, in fabric: FabricSpec, startNs: Nanoseconds, outageNs: Nanoseconds,
                                portReturnSpacingNs: Nanoseconds) -> FaultScript {
        var script = FaultScript()
        let ports = fabric.targetPorts(ofArray: array)
        for port in ports { script.add(atNs: startNs, .setTargetPort(port, .offline)) }
        for (k, port) in ports.enumerated() {
            script.add(atNs: startNs + outageNs + Nanoseconds(k) * portReturnSpacingNs, .setTargetPort(port, .online))
        }
        return script
    }

    /// A target port goes offline for a while.
    public static func targetPortOutage(_ port: Int, startNs: Nanoseconds, durationNs: Nanoseconds) -> FaultScript {
        FaultScript([FaultStep(atNs: startNs, .setTargetPort(port, .offline)),
                     FaultStep(atNs: startNs + durationNs, .setTargetPort(port, .online))])
    }

    /// A host (initiator port) goes offline for a while (a pulled cable).
    public static func hostOutage(_ host: Int, startNs: Nanoseconds, durationNs: Nanoseconds) -> FaultScript {
        FaultScript([FaultStep(atNs: startNs, .setHost(host, .offline)),
                     FaultStep(atNs: startNs + durationNs, .setHost(host, .online))])
    }

    /// A path that flaps: offline at `startNs`, toggling every `toggleEveryNs`, online again
    /// at `startNs + durationNs` at the latest.
    public static func flappingPath(_ device: DevNo, startNs: Nanoseconds, toggleEveryNs: Nanoseconds,
                                    durationNs: Nanoseconds) -> FaultScript {
        precondition(toggleEveryNs > 0, "a flapping path needs a toggle interval")
        var script = FaultScript()
        var t = startNs
        var offline = true
        while t < startNs + durationNs {
            script.add(atNs: t, .setPath(device, offline ? .offline : .online))
            offline.toggle()
            t += toggleEveryNs
        }
        script.add(atNs: startNs + durationNs, .setPath(device, .online))
        return script
    }

    /// A path whose I/O and checks are lost for a while.
    public static func hungPath(_ device: DevNo, startNs: Nanoseconds, durationNs: Nanoseconds) -> FaultScript {
        FaultScript([FaultStep(atNs: startNs, .setPath(device, .hung)),
                     FaultStep(atNs: startNs + durationNs, .setPath(device, .online))])
    }

    /// A path whose I/O and checks take `latencyNs` for a while.
    public static func slowPath(_ device: DevNo, startNs: Nanoseconds, durationNs: Nanoseconds,
                                latencyNs: Nanoseconds) -> FaultScript {
        FaultScript([FaultStep(atNs: startNs, .setPath(device, .slow(latencyNs: latencyNs))),
                     FaultStep(atNs: startNs + durationNs, .setPath(device, .online))])
    }

    /// A target port goes standby for a while, then back to `restoreTo`.
    public static func aluaStandby(targetPort: Int, startNs: Nanoseconds, durationNs: Nanoseconds,
                                   restoreTo: AluaState = .activeOptimized) -> FaultScript {
        FaultScript([FaultStep(atNs: startNs, .setAlua(targetPort: targetPort, .standby)),
                     FaultStep(atNs: startNs + durationNs, .setAlua(targetPort: targetPort, restoreTo))])
    }

    /// An ALUA handover: at `atNs` the `demoted` ports go transitioning; after `transitioningNs`
    /// they come back active/non-optimized and the `promoted` ports become active/optimized.
    public static func aluaHandover(demoted: [Int], promoted: [Int], atNs: Nanoseconds,
                                    transitioningNs: Nanoseconds) -> FaultScript {
        var script = FaultScript()
        for port in demoted { script.add(atNs: atNs, .setAlua(targetPort: port, .transitioning)) }
        for port in demoted { script.add(atNs: atNs + transitioningNs, .setAlua(targetPort: port, .activeNonOptimized)) }
        for port in promoted { script.add(atNs: atNs + transitioningNs, .setAlua(targetPort: port, .activeOptimized)) }
        return script
    }

    /// A path's device is removed at `removeAtNs` and comes back `readdAfterNs` later.
    public static func pathChurn(_ device: DevNo, removeAtNs: Nanoseconds, readdAfterNs: Nanoseconds) -> FaultScript {
        FaultScript([FaultStep(atNs: removeAtNs, .removePath(device)),
                     FaultStep(atNs: removeAtNs + readdAfterNs, .addPath(device))])
    }
}
