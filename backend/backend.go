package backend

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/proto/clusterpb"
	"github.com/shaddock/shaddock/rpc"
)

// Cluster is what a backend needs from the cluster transport; *rpc.Node
// implements it.
type Cluster interface {
	PushMany(ctx context.Context, reqs map[string]*clusterpb.PushRequest, wait bool) (map[string]*clusterpb.PushReply, error)
	Bind(ctx context.Context, frontend rpc.Instance, sessionID int64, uid string) (clusterpb.BindStatus, error)
	Kick(ctx context.Context, frontendID string, req *clusterpb.KickRequest) (int, error)
	KickEventually(frontend rpc.Instance, sessionIDs []int64, uids []string, reason string)
	Check(ctx context.Context, frontend rpc.Instance, sessionIDs []int64, uids []string) (*clusterpb.CheckReply, error)
	Membership() *rpc.Membership
}

// Config configures a Server.
type Config struct {
	ID       string
	Handlers *handler.Mux // client routes of this server's type
	Remotes  *handler.Mux // remotes of this server's type
	Cluster  Cluster
	Logger   *slog.Logger
}

// Server serves forwarded messages and remotes; plug Forward, Call, Holds
// and Gone into the rpc node's handlers. Close it after the node.
type Server struct {
	cfg      Config
	log      *slog.Logger
	sessions *SessionService
	channels *ChannelService
	gone     *goneSessions
}

// New returns a backend server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Handlers == nil {
		cfg.Handlers = handler.NewMux()
	}
	if cfg.Remotes == nil {
		cfg.Remotes = handler.NewMux()
	}
	cfg.Handlers.Seal()
	cfg.Remotes.Seal()
	log := cfg.Logger.With("server", cfg.ID)
	b := &Server{cfg: cfg, log: log,
		sessions: &SessionService{cluster: cfg.Cluster},
		channels: newChannelService(cfg.Cluster, log)}
	b.gone = newGoneSessions(b.channels, cfg.Cluster, log)
	return b
}

// Close stops dropping state of gone sessions and waits for what is
// running; it is idempotent.
func (b *Server) Close() { b.gone.close() }

// Holds reports how much state this server holds for key: the members of
// the channel named key. It is the default of rpc.Handlers.Holds. While the
// members are being checked after a reconnection to the registry (see
// ChannelService) it fails: the rooms held may be left over from before
// this server was declared lost, and placement must not send new members
// to them.
func (b *Server) Holds(key string) (int64, error) { return b.HoldsWith(key, b.channels.Size) }

// HoldsWith is Holds with the game's own count of what it holds for key.
func (b *Server) HoldsWith(key string, size func(key string) int64) (int64, error) {
	if b.gone.checking() {
		return 0, errChecking
	}
	return size(key), nil
}

// Gone takes the sessions a push found gone (rpc.Handlers.Gone): they are
// dropped from the channels.
func (b *Server) Gone(frontend rpc.Instance, sessionIDs []int64, uids []string) {
	b.gone.report(frontend, sessionIDs, uids)
}

// Sessions returns the session service.
func (b *Server) Sessions() *SessionService { return b.sessions }

// Channels returns the channel service.
func (b *Server) Channels() *ChannelService { return b.channels }

// Forward serves one forwarded client message.
func (b *Server) Forward(ctx context.Context, req *clusterpb.ForwardRequest) *clusterpb.ForwardReply {
	s := newSession(req.GetSession(), b.cfg.Cluster)
	resp, err := b.serve(ctx, b.cfg.Handlers, handler.Request{Route: req.Route, Body: req.Body, Notify: req.Notify, Session: s})
	b.logFailure(req.Route, err)
	return &clusterpb.ForwardReply{Body: resp, Error: rpc.ErrorReply(err), Settings: s.changes()}
}

// NonBlocking reports whether a forwarded message's handler was registered
// as never blocking (rpc.Handlers.ForwardNonBlocking).
func (b *Server) NonBlocking(req *clusterpb.ForwardRequest) bool {
	return b.cfg.Handlers.NonBlocking(req.Route)
}

// Call serves one remote call. A call made for a session (App.CallFor)
// hands the remote that session, as a forwarded request's handler gets it.
func (b *Server) Call(ctx context.Context, req *clusterpb.CallRequest) *clusterpb.CallReply {
	r := handler.Request{Route: req.Route, Body: req.Body}
	if req.Session != nil {
		r.Session = newSession(req.Session, b.cfg.Cluster)
	}
	resp, err := b.serve(ctx, b.cfg.Remotes, r)
	b.logFailure(req.Route, err)
	return &clusterpb.CallReply{Body: resp, Error: rpc.ErrorReply(err)}
}

// serve runs the route's handler, turning a panic into a 500 and a log
// line. (A method rather than a closure: this runs once per message.)
func (b *Server) serve(ctx context.Context, mux *handler.Mux, r handler.Request) (resp []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			b.log.Error("handler panicked", "route", r.Route, "panic", p, "stack", string(debug.Stack()))
			resp, err = nil, handler.Errorf(handler.CodeInternal, "internal server error")
		}
	}()
	return mux.Serve(ctx, r)
}

// logFailure logs errors the client will only see as a generic 500.
func (b *Server) logFailure(route string, err error) {
	if err == nil {
		return
	}
	var herr *handler.Error // escapes to errors.As: declared only when needed
	if !errors.As(err, &herr) {
		b.log.Warn("handler failed", "route", route, "err", err)
	}
}
