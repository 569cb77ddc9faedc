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
    exit(Daemon.run(options))
}
