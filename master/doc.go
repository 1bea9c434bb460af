// Package master is shaddock's control plane: the process that reads
// servers.toml, starts every server of an environment (on this machine by
// exec, on other hosts over SSH, see package master/launch), keeps the
// registry they all register with, supervises them (lost servers,
// auto-restart, re-adoption after its own restart) and serves the admin API
// the `master` CLI talks to. With an adminPort it also serves HTTP there
// (http.go): its own Prometheus metrics and the service discovery of every
// server's (observe.go), without the token, and the web dashboard
// (dashboard.go, dashstats.go), with it.
//
// It is not on the data path: no client request, response or push ever
// passes through it, and the cluster keeps serving with the last membership
// it saw while the master is down. When a master starts again it re-adopts
// the servers that are still running (it never starts a second copy), waits
// until they have re-registered before it sends anyone a membership
// snapshot, and starts only the servers that are really not running.
//
// Supervision is one reconcile loop (supervise.go): for every server, what
// should be (the config, and the commands: start, stop, kill, restart)
// against what is (its instance, seen through a launcher, and its registry
// stream), closing the gap with an operation that runs on its own goroutine
// and never holds the master's lock across a call to a host. Every process
// started for an id is an instance with a higher epoch; a start succeeds
// once that instance has registered.
//
// A master keeps its files in two directories (by default run/ and logs/
// beside servers.toml):
//
//	RunDir/<env>.secret      cluster secret, created once and kept (0600)
//	RunDir/<env>.token       admin token, new at every master start (0600)
//	RunDir/<env>.state.json  launcher handles and epochs of its instances, for re-adoption
//	RunDir/<env>.master.pid  the master's pid, locked while it runs
//	RunDir/<env>.applied.toml  the config the master applied, which local servers read
//	LogDir/<server-id>.log   each local server's stdout and stderr, appended
//
// On another host, a server's files are under the environment's base
// there: base/run/<env>.servers.toml (a copy of the applied config) and
// base/logs/<server-id>.log.
//
// [Master] is the controller; [Dial] returns the [Client] the CLI uses;
// [Logs] reads a server's log wherever it runs.
package master
