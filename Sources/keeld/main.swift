// keeld: Keel's multipath daemon (see Options.usage).
import Glibc

switch Options.parse(Array(CommandLine.arguments.dropFirst())) {
case .failure(let error):
    if error.help {
        print(Options.usage)
        exit(0)
    }
    say("\(error.message)\n\(Options.usage)")
    exit(2)
case .success(let options):
    if let command = options.command {
        exit(runClient(command: command, socketPath: options.controlSocket))
    }
    if options.showConfig {
        switch Daemon.loadConfiguration(options) {
        case .failure(let error):
            say("configuration refused:\n\(error)")
            exit(1)
        case .success(let loaded):
            for warning in loaded.warnings { say("warning: \(warning)") }
            var text = loaded.configuration.render()
            text.withUTF8 { _ = write(1, $0.baseAddress, $0.count) }
            exit(0)
        }
    }
    exit(Daemon.run(options))
}
