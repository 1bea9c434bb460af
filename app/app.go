package app

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/shaddock/shaddock/backend"
	"github.com/shaddock/shaddock/connector"
	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/pomelopb"
	"github.com/shaddock/shaddock/rpc"
)

// SecretEnv is the environment variable the master passes the cluster
// secret in (not an argument: arguments are visible to every user in ps).
const SecretEnv = "SHADDOCK_CLUSTER_SECRET"

// BuildEnv carries the build id (the first 12 hex digits of the binary's
// SHA-256) from a master that knows it: it hashed this very file, here or
// before uploading it. Without it the server hashes its own binary.
const BuildEnv = "SHADDOCK_BUILD"

// EpochEnv carries the instance's epoch from the master (see rpc.Member);
// a server started by hand has none.
const EpochEnv = "SHADDOCK_EPOCH"

// Info describes the running server to hooks.
type Info struct {
	ID, Type, Env string
	Frontend      bool
	Group         string
	// TLS is the frontend's client-port TLS configuration (servers.toml
	// tlsCert/tlsKey), nil without; a game serving a page beside the
	// frontend can serve it over https with the same certificate.
	TLS *tls.Config
}

// App is a game binary's registry of handlers and hooks, and, once Run has
// started, its handle on the cluster.
type App struct {
	handlers   *handler.Mux
	remotes    *handler.Mux
	routes     map[string]rpc.RouteFunc
	dict       []string
	protos     *pomelopb.Protos
	onClosed   []func(ctx context.Context, s handler.Session)
	onServe    []func(ctx context.Context, info Info) error
	frontendFn []func(typ string, cfg *connector.Config)
	flags      *flag.FlagSet
	log        *slog.Logger
	mem        *rpc.Membership // exists from New so handlers can hold it

	mu      sync.RWMutex // guards the fields set by Run
	info    Info
	node    *rpc.Node
	backend *backend.Server
	front   *connector.Server
}

// New returns an App with no handlers.
func New() *App {
	return &App{
		handlers: handler.NewMux(),
		remotes:  handler.NewMux(),
		routes:   make(map[string]rpc.RouteFunc),
		flags:    flag.NewFlagSet("server", flag.ContinueOnError),
		mem:      rpc.NewMembership(),
	}
}

// Handle registers a client route, serverType.handler.method.
func (a *App) Handle(route string, h handler.Func) { a.handlers.Handle(route, h) }

// Remote registers a server-to-server route, serverType.remote.method.
func (a *App) Remote(route string, h handler.Func) { a.remotes.Handle(route, h) }

// Use adds filters around every client handler, wherever it runs.
func (a *App) Use(f ...handler.Filter) { a.handlers.Use(f...) }

// Route sets how frontends pick the server of serverType for a session's
// messages; the default is rpc.DefaultRoute.
func (a *App) Route(serverType string, fn rpc.RouteFunc) { a.routes[serverType] = fn }

// Dictionary adds routes to the route dictionary after the handler routes
// (Pomelo's dictionary.json): typically push routes, so pushes travel with
// 2-byte codes.
func (a *App) Dictionary(routes ...string) { a.dict = append(a.dict, routes...) }

// Protos turns on protobuf bodies on every frontend (Pomelo's
// useProtobuf): p holds the game's server and client protos in Pomelo's
// JSON format (pomelopb.Parse of serverProtos.json and clientProtos.json).
// Handlers keep reading and writing JSON (their typed structs); frontends
// decode requests on routes with client protos and encode responses and
// pushes on routes with server protos. ConfigureFrontend can turn it off
// for a server type (cfg.Protos = nil).
func (a *App) Protos(p *pomelopb.Protos) { a.protos = p }

// OnSessionClosed runs fn on a frontend whenever a client session ends (after
// any message it was handling), like Pomelo's sessionService 'closed' event.
func (a *App) OnSessionClosed(fn func(ctx context.Context, s handler.Session)) {
	a.onClosed = append(a.onClosed, fn)
}

// OnServe runs fn beside the server while it serves (ctx ends when it
// stops), for game services such as an HTTP page. An error stops the server.
func (a *App) OnServe(fn func(ctx context.Context, info Info) error) {
	a.onServe = append(a.onServe, fn)
}

// ConfigureFrontend lets the game adjust a frontend's connector settings
// (heartbeat, limits, handshake hooks) before it starts.
func (a *App) ConfigureFrontend(fn func(serverType string, cfg *connector.Config)) {
	a.frontendFn = append(a.frontendFn, fn)
}

// Flags is the flag set Run parses; games add their own flags to it (passed
// through servers.toml's args) before calling Run.
func (a *App) Flags() *flag.FlagSet { return a.flags }

// Info describes the running server; zero before Run.
func (a *App) Info() Info {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.info
}

// Logger returns the server's logger (the default logger before Run).
func (a *App) Logger() *slog.Logger {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.log == nil {
		return slog.Default()
	}
	return a.log
}

func (a *App) cluster() (*rpc.Node, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.node == nil {
		return nil, errors.New("app: not running")
	}
	return a.node, nil
}

// Membership returns the cluster view; it is empty until Run has registered
// with the master, and kept current after.
func (a *App) Membership() *rpc.Membership { return a.mem }

// Channels returns the channel service of a backend server.
func (a *App) Channels() *backend.ChannelService {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.backend == nil {
		return nil
	}
	return a.backend.Channels()
}

// Sessions returns the backend session service.
func (a *App) Sessions() *backend.SessionService {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.backend == nil {
		return nil
	}
	return a.backend.Sessions()
}

// Call runs a remote on the server of its type that key routes to (crc32 of
// key, as the default route does), JSON-encoding req and decoding into resp
// (nil to discard).
func (a *App) Call(ctx context.Context, route, key string, req, resp any) error {
	n, err := a.cluster()
	if err != nil {
		return err
	}
	typ := handler.ServerType(route)
	target, err := rpc.Pick(key, n.Membership().Eligible(typ))
	if err != nil {
		return handler.Errorf(handler.CodeUnavailable, "call %s: no %s server available", route, typ)
	}
	return a.CallServer(ctx, target.ID, route, req, resp)
}

// CallServer runs a remote on a named server.
func (a *App) CallServer(ctx context.Context, serverID, route string, req, resp any) error {
	n, err := a.cluster()
	if err != nil {
		return err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("call %s: encode: %w", route, err)
	}
	out, err := n.Call(ctx, serverID, route, body)
	if err != nil {
		return fmt.Errorf("call %s on %s: %w", route, serverID, err)
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(out, resp); err != nil {
		return fmt.Errorf("call %s on %s: decode: %w", route, serverID, err)
	}
	return nil
}

// buildID identifies the running binary: a hash of the executable, so that
// `master list` shows which build each server runs during rolling updates.
func buildID() string {
	exe, err := os.Executable()
	if err != nil {
		return "unknown"
	}
	f, err := os.Open(exe)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "unknown"
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}
