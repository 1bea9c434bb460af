// Package master is shaddock's control plane: the process that reads
// servers.toml, starts every server of an environment, keeps the registry
// they all register with, supervises them (lost servers, auto-restart,
// re-adoption after its own restart) and serves the admin API the `master`
// CLI talks to.
//
// It is not on the data path: no client request, response or push ever
// passes through it, and the cluster keeps serving with the last membership
// it saw while the master is down. When a master starts again it re-adopts
// the servers that are still running (it never starts a second copy), waits
// until they have re-registered before it sends anyone a membership
// snapshot, and starts only the servers that are really not running.
//
// A master keeps its files in two directories (by default run/ and logs/
// beside servers.toml):
//
//	RunDir/<env>.secret      cluster secret, created once and kept (0600)
//	RunDir/<env>.token       admin token, new at every master start (0600)
//	RunDir/<env>.state.json  pids of the servers it started, for re-adoption
//	RunDir/<env>.master.pid  the master's pid, locked while it runs
//	LogDir/<server-id>.log   each server's stdout and stderr, appended
//
// [Master] is the controller; [Dial] returns the [Client] the CLI uses.
package master
