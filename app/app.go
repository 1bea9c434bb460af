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
	"github.com/shaddock/shaddock/proto/clusterpb"
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
	stateful   map[string]stateful
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
	fe      *frontend // the routing of a frontend server; nil on backends
}

// New returns an App with no handlers.
func New() *App {
	return &App{
		handlers: handler.NewMux(),
		remotes:  handler.NewMux(),
		routes:   make(map[string]rpc.RouteFunc),
		stateful: make(map[string]stateful),
		flags:    flag.NewFlagSet("server", flag.ContinueOnError),
		mem:      rpc.NewMembership(),
	}
}

// Handle registers a client route, serverType.handler.method.
func (a *App) Handle(route string, h handler.Func) { a.handlers.Handle(route, h) }

// HandleNonBlocking registers a client route whose handler never blocks
// (see handler.Mux.HandleNonBlocking): a backend runs it on the goroutine
// that received the message, saving a goroutine handoff per message.
func (a *App) HandleNonBlocking(route string, h handler.Func) { a.handlers.HandleNonBlocking(route, h) }

// Remote registers a server-to-server route, serverType.remote.method.
func (a *App) Remote(route string, h handler.Func) { a.remotes.Handle(route, h) }

// Use adds filters around every client handler, wherever it runs.
func (a *App) Use(f ...handler.Filter) { a.handlers.Use(f...) }

// Route sets how frontends pick the server of serverType for a session's
// messages; the default is rpc.DefaultRoute. A stateful type (Stateful) is
// routed by its placement instead.
func (a *App) Route(serverType string, fn rpc.RouteFunc) { a.routes[serverType] = fn }

// Stateful declares that servers of serverType hold state per key (a room,
// a match), a session's key being the value of its setting named setting
// (chat: "rid"). Such keys are placed rather than hashed on every message:
//
//   - a key stays on the server that holds it (see Holds) as long as that
//     server runs, also when servers of the type are added; a key nobody
//     holds goes to rpc.PickIndex(key, n) of the running servers sorted by
//     id (Pomelo's crc32 % n); a draining server keeps its keys and gets no
//     new ones (rpc.Node.Place);
//   - a session's messages of the type, and the remotes called for it with
//     CallFor, go to the server its key was placed on when it first needed
//     one, for as long as that server lives;
//   - when that server ends (lost, failed, stopping, stopped, removed or
//     restarted), the frontend kicks the session at once with
//     ReasonServerRestarted or ReasonServerStopped: the state it had there
//     is gone, and its client re-enters, which places the key again.
//
// A session without the setting gets a 400 for the type's routes.
func (a *App) Stateful(serverType, setting string) {
	st := a.stateful[serverType]
	st.setting = setting
	a.stateful[serverType] = st
}

// Holds sets how a server of the stateful serverType tells how much state
// it holds for a key, 0 for none (placement asks every server of the type).
// The default counts the members of the channel named key (Channels), right
// for a game that keeps a channel per room, as chatofpomelo does. The count
// also settles the rare key that two servers hold (after a partition): the
// larger wins.
func (a *App) Holds(serverType string, fn func(key string) int64) {
	st := a.stateful[serverType]
	st.holds = fn
	a.stateful[serverType] = st
}

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

// Call runs a remote on the server of its type that key routes to: where
// key is placed for a stateful type (Stateful), else crc32 of key over the
// running servers, as the default route does. It JSON-encodes req and
// decodes into resp (nil to discard).
func (a *App) Call(ctx context.Context, route, key string, req, resp any) error {
	n, err := a.cluster()
	if err != nil {
		return err
	}
	typ := handler.ServerType(route)
	var target rpc.Instance
	if _, ok := a.stateful[typ]; ok {
		a.mu.RLock()
		fe := a.fe
		a.mu.RUnlock()
		cached := false
		if fe != nil {
			target, cached = fe.pins.cached(typ, key)
		}
		if !cached {
			m, err := n.Place(ctx, typ, key)
			if err != nil {
				return fmt.Errorf("call %s: %w", route, err)
			}
			target = m.Instance()
		}
	} else {
		m, err := rpc.Pick(key, n.Membership().Eligible(typ))
		if err != nil {
			return handler.Errorf(handler.CodeUnavailable, "no %s server available", typ)
		}
		target = m.Instance()
	}
	return a.call(ctx, n, target, &clusterpb.CallRequest{Route: route}, req, resp)
}

// CallFor runs a remote on the server that handles s's messages of the
// route's type, as Pomelo's app.rpc.TYPE.REMOTE.METHOD(session, ...) does:
// for a stateful type the server its key is placed on (placing it, and
// pinning s there, if it is not yet: see Stateful), else the one the type's
// route function picks for s. The remote's handler gets s as its session
// (register it with handler.Typed to read it; backend.TargetOf(s) names it
// for a channel). req is JSON-encoded; resp (nil to discard) decoded.
func (a *App) CallFor(ctx context.Context, s handler.Session, route string, req, resp any) error {
	n, err := a.cluster()
	if err != nil {
		return err
	}
	typ := handler.ServerType(route)
	a.mu.RLock()
	fe := a.fe
	a.mu.RUnlock()
	var target rpc.Instance
	_, local := s.(*connector.Session)
	switch st, stateful := a.stateful[typ]; {
	case local && fe != nil:
		target, err = fe.target(ctx, s, typ, handler.Request{Route: route, Session: s})
	case stateful:
		key, ok := s.Get(st.setting)
		if !ok || key == "" {
			return handler.Errorf(handler.CodeBadRequest, "session has no %s", st.setting)
		}
		var m rpc.Member
		if m, err = n.Place(ctx, typ, key); err == nil {
			target = m.Instance()
		}
	default:
		target, err = routeAmong(a.routes, n.Membership(), typ, handler.Request{Route: route, Session: s})
	}
	if err != nil {
		return fmt.Errorf("call %s: %w", route, err)
	}
	return a.call(ctx, n, target, &clusterpb.CallRequest{Route: route, Session: sessionSnapshot(s)}, req, resp)
}

// CallServer runs a remote on a named server.
func (a *App) CallServer(ctx context.Context, serverID, route string, req, resp any) error {
	n, err := a.cluster()
	if err != nil {
		return err
	}
	return a.call(ctx, n, rpc.Instance{ID: serverID}, &clusterpb.CallRequest{Route: route}, req, resp)
}

// call encodes req into creq, calls target and decodes the answer into resp.
func (a *App) call(ctx context.Context, n *rpc.Node, target rpc.Instance, creq *clusterpb.CallRequest, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("call %s: encode: %w", creq.Route, err)
	}
	creq.Body, creq.TargetEpoch = body, target.Epoch
	out, err := n.Call(ctx, target.ID, creq)
	if err != nil {
		return fmt.Errorf("call %s on %s: %w", creq.Route, target.ID, err)
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(out, resp); err != nil {
		return fmt.Errorf("call %s on %s: decode: %w", creq.Route, target.ID, err)
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
