// Package config loads servers.toml, the cluster topology of a shaddock game
// (Pomelo's servers.json and master.json in one TOML file), for one
// environment, and returns it validated and expanded.
//
// It is for: reading the file, rejecting every mistake it can see (unknown
// keys, wrong types, duplicate ids, duplicate host:port, frontends without a
// client port, ...) with a message that names the file, the line and the key,
// expanding clusterCount entries into individual servers, and filling in
// defaults. It is not for: starting, stopping or connecting to anything,
// resolving host names, checking that ports are free, or watching the file
// for changes. The result is plain data; callers treat it as read-only, and it
// is then safe for concurrent use.
//
// # Format
//
// One top-level table per environment. Inside it:
//
//	[development]
//	binary = "bin/chat"   # required: the game binary every server runs, relative to base unless absolute
//	base = "."            # working directory on every host (default "."); relative to the config file's directory
//	logFormat = "json"    # how every server logs: "text" (default) or "json" (one object a line, for production)
//
//	[development.master]  # required
//	id = "master-server-1"
//	host = "127.0.0.1"
//	port = 3005           # control plane (gRPC)
//	adminHost = "0.0.0.0" # optional, defaults to host; needs adminPort
//	adminPort = 3006      # optional: /metrics, /sd (Prometheus discovery) and the dashboard
//
//	[development.ssh]     # optional: how the master reaches hosts that are not this machine
//	user = "deploy"       # default: the user running the master
//	port = 22             # default 22
//	identityFile = "~/.ssh/id_ed25519"  # and/or the keys of the agent at $SSH_AUTH_SOCK
//	knownHosts = "~/.ssh/known_hosts"   # default ~/.ssh/known_hosts; every host's key must be there
//	uploadBinary = true   # copy the binary to each host whose copy's SHA-256 differs
//
//	[development.lb]      # optional; driver is "haproxy", "command" or absent
//	driver = "haproxy"
//	haproxySocket = "unix:/run/haproxy.sock"  # runtime API: "unix:PATH" or "HOST:PORT"
//	haproxyBackend = "gates"
//	# or driver = "command", which runs these (status is optional):
//	# drainCommand = "lbctl drain gates"
//	# enableCommand = "lbctl enable gates"
//	# statusCommand = "lbctl status gates"
//
//	[development.rolling] # optional
//	drainTimeout = "60s"  # default 60s
//	startTimeout = "30s"  # default 30s
//
//	[[development.connector]] # every other key is a server type: an array of tables
//	id = "connector-server"   # required unless clusterCount is set
//	host = "127.0.0.1"        # required
//	port = "3150++"           # required cluster (gRPC) port: 3150, "3150" or, with clusterCount, "3150++"
//	clientHost = "127.0.0.1"  # frontends only, defaults to host
//	clientPort = "3050++"     # required on frontends, an error elsewhere
//	frontend = true
//	clusterCount = 2          # N copies; ids <id>-<i>, or cluster-server-<type>-<seq> without id
//	group = "a"               # "a" or "b" (two-group rolling update)
//	autoRestart = true
//	args = ["--verbose"]      # extra arguments
//	env = { GOGC = "200" }    # extra environment
//	tlsCert = "certs/connector.pem"  # frontends only: TLS on the client port (raw TCP over TLS and wss://),
//	tlsKey = "certs/connector.key"   #   PEM certificate chain and key, relative to base; both or neither
//	metricsPort = "9150++"    # optional: Prometheus metrics at http://host:metricsPort/metrics; "N++" with clusterCount
//
// Reserved names (binary, base, master, ssh, lb, rolling) cannot be server
// types; a server type matches [A-Za-z][A-Za-z0-9_-]* (no '.', since routes
// are type.handler.method). A server id matches [A-Za-z0-9][A-Za-z0-9._-]*.
// "N++" means copy i of a clusterCount entry gets N+i; it is valid only for
// port, clientPort and metricsPort, and only with clusterCount. A
// metricsPort, like every port, must not be another address's. The id-less counter seq
// runs over all generated servers of one type in file order, from 0.
//
// Every problem found is reported, one per line, as
//
//	servers.toml:23: connector: clientPort "30x0++" is not a port
//
// Each one is an [*Error]; several are joined with [errors.Join].
package config
