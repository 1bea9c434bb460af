package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/shaddock/shaddock/connector"
	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/internal/packedmap"
	"github.com/shaddock/shaddock/metrics"
	"github.com/shaddock/shaddock/proto/clusterpb"
	"github.com/shaddock/shaddock/rpc"
)

// frontend decides, per client message, whether the route runs here or on
// a backend (and which), and serves the session operations backends ask of
// it.
type frontend struct {
	typ      string
	srv      *connector.Server
	node     *rpc.Node
	local    *handler.Mux
	routes   map[string]rpc.RouteFunc
	stateful map[string]stateful
	pins     *placements
	met      *metrics.Server // nil without a metricsPort
}

func newFrontend(typ string, node *rpc.Node, handlers *handler.Mux, routes map[string]rpc.RouteFunc,
	st map[string]stateful, log *slog.Logger) *frontend {
	return &frontend{typ: typ, node: node, local: handlers, routes: routes, stateful: st,
		pins: newPlacements(node.Membership(), log)}
}

// close waits for the frontend's own goroutines.
func (f *frontend) close() { f.pins.close() }

// serve is the connector's handler.
func (f *frontend) serve(ctx context.Context, r handler.Request) ([]byte, error) {
	typ := handler.ServerType(r.Route)
	if typ == f.typ {
		return f.local.Serve(ctx, r)
	}
	// Every server runs the same binary: a route no handler was registered
	// for is unknown everywhere.
	if _, ok := f.local.Lookup(r.Route); !ok {
		return nil, handler.Errorf(handler.CodeNotFound, "no handler for route %q", r.Route)
	}
	if f.node.Membership().FrontendType(typ) {
		// Frontends serve their routes to their own clients only.
		return nil, handler.Errorf(handler.CodeNotFound, "route %q is served by %s servers: connect to one", r.Route, typ)
	}
	target, err := f.target(ctx, r.Session, typ, r)
	if err != nil {
		return nil, err
	}
	rep, err := f.node.Forward(ctx, target.ID, forwardOf(r, target))
	return answer(r.Session, rep, err)
}

// start is the connector's AsyncHandler: a message for a backend is
// forwarded without a goroutine waiting for the reply (the reply answers
// the client from the stream's receiver). It leaves to serve what runs
// here, what is refused, and the messages of a stateful type whose session
// is not pinned yet (placing it may have to ask the cluster).
func (f *frontend) start(ctx context.Context, r handler.Request, done func([]byte, error)) bool {
	typ := handler.ServerType(r.Route)
	if typ == f.typ {
		return false
	}
	if _, ok := f.local.Lookup(r.Route); !ok || f.node.Membership().FrontendType(typ) {
		return false // serve answers why
	}
	target, ok, err := f.targetNow(r.Session, typ, r)
	switch {
	case !ok:
		return false
	case err != nil:
		done(nil, err)
		return true
	}
	s := r.Session
	f.node.ForwardAsync(ctx, target.ID, forwardOf(r, target), func(rep *clusterpb.ForwardReply, err error) {
		done(answer(s, rep, err))
	})
	return true
}

// forwardBlock is a forward and its session snapshot in one allocation:
// every forwarded message has both.
type forwardBlock struct {
	req  clusterpb.ForwardRequest
	snap clusterpb.Session
}

// forwardOf is the message r as its target gets it.
func forwardOf(r handler.Request, target rpc.Instance) *clusterpb.ForwardRequest {
	b := new(forwardBlock)
	b.req.Route, b.req.Body, b.req.Notify, b.req.TargetEpoch = r.Route, r.Body, r.Notify, target.Epoch
	fillSnapshot(&b.snap, r.Session)
	b.req.Session = &b.snap
	return &b.req
}

// answer turns a forward's outcome into the handler's: the settings the
// backend changed applied to s, then the body or the error.
func answer(s handler.Session, rep *clusterpb.ForwardReply, err error) ([]byte, error) {
	if rep != nil {
		for k, v := range rep.Settings {
			s.Set(k, v)
		}
	}
	if err != nil {
		return nil, err
	}
	return rep.Body, nil
}

// target picks the server instance for s's messages of type typ (r is the
// message, for route functions): where its key is placed for a stateful
// type, else what the type's route function (default: crc32 of the uid)
// picks among the running servers.
func (f *frontend) target(ctx context.Context, s handler.Session, typ string, r handler.Request) (rpc.Instance, error) {
	if st, ok := f.stateful[typ]; ok {
		return f.placeFor(ctx, s, typ, st)
	}
	return routeAmong(f.routes, f.node.Membership(), typ, r)
}

// targetNow is target when it can be told without blocking (ok false when
// it cannot: a stateful type's session not pinned yet).
func (f *frontend) targetNow(s handler.Session, typ string, r handler.Request) (inst rpc.Instance, ok bool, err error) {
	st, stateful := f.stateful[typ]
	if !stateful {
		inst, err = routeAmong(f.routes, f.node.Membership(), typ, r)
		return inst, true, err
	}
	key, _ := s.Get(st.setting)
	if key == "" {
		return rpc.Instance{}, false, nil // placeFor answers it
	}
	return f.pinnedFor(s, typ, key)
}

// routeAmong picks the server of type typ for message r among the running ones,
// by the type's route function (default rpc.DefaultRoute: crc32 of the uid).
func routeAmong(routes map[string]rpc.RouteFunc, mem *rpc.Membership, typ string, r handler.Request) (rpc.Instance, error) {
	servers := mem.Eligible(typ)
	if len(servers) == 0 {
		return rpc.Instance{}, handler.Errorf(handler.CodeUnavailable, "no %s server available", typ)
	}
	fn := routes[typ]
	if fn == nil {
		fn = rpc.DefaultRoute
	}
	m, err := fn(r, servers)
	if err != nil {
		if herr := (*handler.Error)(nil); errors.As(err, &herr) {
			return rpc.Instance{}, err // the route function's own answer
		}
		return rpc.Instance{}, &handler.Error{Code: handler.CodeInternal, Msg: "internal server error", Err: fmt.Errorf("route %s: %w", r.Route, err)}
	}
	return m.Instance(), nil
}

// sessionSnapshot is s as backends get it with a forwarded message or a
// remote called for it.
func sessionSnapshot(s handler.Session) *clusterpb.Session {
	snap := new(clusterpb.Session)
	fillSnapshot(snap, s)
	return snap
}

// fillSnapshot sets the fields of a zero snap to those of s.
func fillSnapshot(snap *clusterpb.Session, s handler.Session) {
	if cs, ok := s.(*connector.Session); ok {
		snap.FrontendId, snap.FrontendEpoch, snap.Id, snap.Uid, snap.Settings = cs.FrontendID(), cs.FrontendEpoch(), cs.ID(), cs.UID(), cs.PackedSettings()
		return
	}
	snap.FrontendId, snap.Id, snap.Uid = s.FrontendID(), s.ID(), s.UID()
	if e, ok := s.(interface{ FrontendEpoch() uint64 }); ok {
		snap.FrontendEpoch = e.FrontendEpoch()
	}
	switch v := s.(type) {
	case interface{ PackedSettings() []byte }:
		snap.Settings = v.PackedSettings()
	case interface{ SettingsView() map[string]string }:
		snap.Settings = packedmap.Pack(v.SettingsView())
	}
}

// Push implements rpc.Frontend.
func (f *frontend) Push(req *clusterpb.PushRequest) *clusterpb.PushReply {
	var (
		missingIDs  []int64
		missingUIDs []string
		err         error
	)
	f.met.ClusterPush()
	switch {
	case req.Broadcast:
		if err = f.srv.Broadcast(req.Route, req.Body); err == nil {
			f.met.Pushed(f.srv.Len()) // the sessions there are, near enough
		}
	default:
		if len(req.SessionIds) > 0 {
			missingIDs, err = f.srv.PushToSessions(req.SessionIds, req.Route, req.Body)
		}
		if err == nil && len(req.Uids) > 0 {
			missingUIDs, err = f.srv.PushToUIDs(req.Uids, req.Route, req.Body)
		}
		if err == nil {
			f.met.Pushed(len(req.SessionIds) - len(missingIDs) + len(req.Uids) - len(missingUIDs))
		}
	}
	if err == nil && len(missingIDs)+len(missingUIDs) == 0 {
		return nil // nothing to report: most pushes, no reply allocated
	}
	rep := &clusterpb.PushReply{MissingSessionIds: missingIDs, MissingUids: missingUIDs}
	if err != nil {
		rep.Error = &clusterpb.Error{Code: handler.CodeBadRequest, Msg: err.Error()}
	}
	return rep
}

// Bind implements rpc.Frontend.
func (f *frontend) Bind(ctx context.Context, sessionID int64, uid string) clusterpb.BindStatus {
	s := f.srv.Session(sessionID)
	if s == nil {
		return clusterpb.BindStatus_BIND_SESSION_GONE
	}
	switch err := s.Bind(ctx, uid); {
	case err == nil:
		return clusterpb.BindStatus_BIND_OK
	case errors.Is(err, handler.ErrUIDBound):
		return clusterpb.BindStatus_BIND_UID_TAKEN
	case errors.Is(err, handler.ErrAlreadyBound):
		return clusterpb.BindStatus_BIND_ALREADY_BOUND
	default:
		return clusterpb.BindStatus_BIND_SESSION_GONE
	}
}

// Check implements rpc.Frontend.
func (f *frontend) Check(sessionIDs []int64, uids []string) (goneIDs []int64, goneUIDs []string) {
	for _, id := range sessionIDs {
		if f.srv.Session(id) == nil {
			goneIDs = append(goneIDs, id)
		}
	}
	for _, uid := range uids {
		if f.srv.SessionByUID(uid) == nil {
			goneUIDs = append(goneUIDs, uid)
		}
	}
	return goneIDs, goneUIDs
}

// Kick implements rpc.Frontend.
func (f *frontend) Kick(ctx context.Context, req *clusterpb.KickRequest) int {
	n := 0
	for _, id := range req.SessionIds {
		if s := f.srv.Session(id); s != nil && s.Kick(ctx, req.Reason) == nil {
			n++
		}
	}
	for _, uid := range req.Uids {
		if s := f.srv.SessionByUID(uid); s != nil && s.Kick(ctx, req.Reason) == nil {
			n++
		}
	}
	f.met.Kicked(req.Reason, n)
	return n
}
