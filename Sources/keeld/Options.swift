// keeld's command line.
import Glibc

/// What to do with queueing maps when keeld is asked to stop.
enum ExitQueueing: String {
    /// Leave `queue_if_no_path` set: queued I/O waits for the next keeld (the safe default: a
    /// restart loses nothing).
    case keepQueueing = "keep-queueing"
    /// Switch every map to `fail_if_no_path` first: I/O with no path fails instead of waiting
    /// for a daemon that may not come back.
    case failQueued = "fail-queued"
}

/// keeld's options, parsed from its arguments.
struct Options {
    var configPath = "/etc/multipath.conf"
    /// Whether `--config` was given: then a missing file is an error; the default path may be
    /// absent (built-in defaults apply, as multipathd does).
    var configGiven = false
    var logFile: String?
    var logFileBytesMax = 64 << 20
    var logToStderr = false
    var logToJournal = false
    var controlSocket = "/run/keeld.socket"
    /// multipathd's socket file, served besides its abstract name (nil: `--multipathd-socket none`).
    var multipathdSocket: String? = "/run/multipathd.socket"
    /// `--metrics-port`: Prometheus metrics over HTTP on 127.0.0.1 (nil: off).
    var metricsPort: UInt16?
    /// Locked (flock) for the daemon's lifetime and holding its pid: one keeld per host.
    var pidFile = "/run/keeld.pid"
    var realtimePriority: Int32 = 50
    var allowUnpinned = false
    /// nil: multipath.conf's `queue_without_daemon` decides (unset: keep queueing).
    var onExit: ExitQueueing?
    /// Client mode: send this command to a running keeld and print the answer.
    var command: String?
    /// Print the effective configuration and exit.
    var showConfig = false

    static let usage = """
    usage: keeld [--config PATH] [--log-file PATH] [options]
           keeld --command "show paths" [--control-socket PATH]
           keeld --show-config [--config PATH]

    Keel's multipath daemon: builds dm-multipath maps over the SCSI paths it finds, checks every
    path and fails, reinstates and regroups them. Runs in the foreground; SIGTERM or SIGINT stop
    it, SIGHUP reloads the configuration.

      --config PATH           multipath.conf to read (default /etc/multipath.conf; when that
                              default is absent the built-in defaults apply)
      --log-file PATH         write the log to PATH with O_DIRECT (rotated to PATH.1)
      --log-file-max-mb N     rotate the log file at N MiB (default 64)
      --stderr                also copy log lines to standard error (never blocks on it)
      --journal               also send log lines to the systemd journal (never blocks on it)
      --control-socket PATH   operator socket (default /run/keeld.socket)
      --multipathd-socket PATH  multipathd's socket file, served with multipathd's framing
                              besides @/org/kernel/linux/storage/multipathd when that name
                              is free (default /run/multipathd.socket; none: not served)
      --metrics-port N        serve Prometheus metrics over HTTP at 127.0.0.1:N/metrics
                              (default: off; `show metrics` on the sockets always works)
      --pid-file PATH         locked while keeld runs, holds its pid; a second keeld finding it
                              locked exits 1 naming the running one (default /run/keeld.pid)
      --rt-priority N         SCHED_FIFO priority of the recovery thread, 1-99 (default 50);
                              0 runs it at normal priority
      --allow-unpinned        run on when memory cannot be locked (default: exit)
      --on-exit MODE          keep-queueing: maps keep queueing I/O after keeld stops;
                              fail-queued: switch them to fail_if_no_path first
                              (default: queue_without_daemon from multipath.conf; unset keeps
                              queueing, where multipathd's default fails queued I/O)
      --command TEXT          send TEXT to the running keeld (show daemon, show maps, show
                              paths, fail path DEV, reinstate path DEV, disablequeueing map NAME,
                              restorequeueing map NAME, reconfigure, shutdown, and multipathd's
                              other commands) and print the answer
      --show-config           print the effective configuration (files, conf.d, built-in values
                              as comments) in multipath.conf syntax, with its warnings, and exit
      --help                  this text
    """

    /// Parses `arguments` (without the program name). Errors name the argument at fault.
    static func parse(_ arguments: [String]) -> Result<Options, OptionError> {
        var options = Options()
        var i = 0
        func value(_ flag: String) -> Result<String, OptionError> {
            guard i + 1 < arguments.count else { return .failure(OptionError("\(flag) needs a value")) }
            i += 1
            return .success(arguments[i])
        }
        while i < arguments.count {
            let argument = arguments[i]
            switch argument {
            case "--config":
                guard case .success(let v) = value(argument) else { return .failure(OptionError("--config needs a path")) }
                options.configPath = v
                options.configGiven = true
            case "--log-file":
                guard case .success(let v) = value(argument) else { return .failure(OptionError("--log-file needs a path")) }
                options.logFile = v
            case "--log-file-max-mb":
                guard case .success(let v) = value(argument), let mb = Int(v), mb >= 1, mb <= 65536 else {
                    return .failure(OptionError("--log-file-max-mb needs a whole number of MiB from 1 to 65536"))
                }
                options.logFileBytesMax = mb << 20
            case "--stderr": options.logToStderr = true
            case "--journal": options.logToJournal = true
            case "--control-socket":
                guard case .success(let v) = value(argument), !v.isEmpty, v.utf8.count < 108 else {
                    return .failure(OptionError("--control-socket needs a path shorter than 108 bytes"))
                }
                options.controlSocket = v
            case "--multipathd-socket":
                guard case .success(let v) = value(argument), !v.isEmpty, v.utf8.count < 108 else {
                    return .failure(OptionError("--multipathd-socket needs a path shorter than 108 bytes, or none"))
                }
                options.multipathdSocket = v == "none" ? nil : v
            case "--metrics-port":
                guard case .success(let v) = value(argument), let port = UInt16(v), port > 0 else {
                    return .failure(OptionError("--metrics-port needs a TCP port from 1 to 65535"))
                }
                options.metricsPort = port
            case "--pid-file":
                guard case .success(let v) = value(argument), !v.isEmpty else {
                    return .failure(OptionError("--pid-file needs a path"))
                }
                options.pidFile = v
            case "--rt-priority":
                guard case .success(let v) = value(argument), let n = Int32(v), n >= 0, n <= 99 else {
                    return .failure(OptionError("--rt-priority needs a number from 0 to 99"))
                }
                options.realtimePriority = n
            case "--allow-unpinned": options.allowUnpinned = true
            case "--on-exit":
                guard case .success(let v) = value(argument), let mode = ExitQueueing(rawValue: v) else {
                    return .failure(OptionError("--on-exit needs keep-queueing or fail-queued"))
                }
                options.onExit = mode
            case "--command":
                guard case .success(let v) = value(argument) else { return .failure(OptionError("--command needs the command text")) }
                options.command = v
            case "--show-config": options.showConfig = true
            case "--help", "-h":
                return .failure(OptionError(help: true))
            default:
                return .failure(OptionError("unknown argument '\(argument)'"))
            }
            i += 1
        }
        return .success(options)
    }
}

/// A command line keeld cannot run with (or a request for the usage text).
struct OptionError: Error {
    var message: String
    var help = false
    init(_ message: String) { self.message = message }
    init(help: Bool) {
        self.message = ""
        self.help = help
    }
}

/// Writes `text` to standard error (start-up and exit only: the running daemon logs).
func say(_ text: String) {
    var line = "keeld: " + text + "\n"
    line.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let n = write(2, bytes.baseAddress! + offset, bytes.count - offset)
            if n <= 0 { return }
            offset += n
        }
    }
}
