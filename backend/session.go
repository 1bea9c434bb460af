package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/internal/flatjson"
	"github.com/shaddock/shaddock/internal/packedmap"
	"github.com/shaddock/shaddock/proto/clusterpb"
	"github.com/shaddock/shaddock/rpc"
)

// session is the handler.Session a backend handler gets: a snapshot of the
// frontend session, whose changes go back with the reply (settings) or to
// the frontend at once (bind, push, kick). Those calls name the frontend
// instance: a snapshot outliving its frontend reaches no session of the
// frontend's successor.
type session struct {
	snap    *clusterpb.Session
	cluster Cluster

	mu      sync.Mutex
	uid     string
	changed map[string]string
}

func newSession(snap *clusterpb.Session, c Cluster) *session {
	if snap == nil {
		snap = &clusterpb.Session{}
	}
	return &session{snap: snap, cluster: c, uid: snap.Uid}
}

func (s *session) ID() int64          { return s.snap.Id }
func (s *session) FrontendID() string { return s.snap.FrontendId }

// FrontendEpoch returns the epoch of the frontend instance holding the
// session (see TargetOf).
func (s *session) FrontendEpoch() uint64 { return s.snap.FrontendEpoch }

func (s *session) frontend() rpc.Instance {
	return rpc.Instance{ID: s.snap.FrontendId, Epoch: s.snap.FrontendEpoch}
}

func (s *session) UID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uid
}

func (s *session) Get(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.changed[key]; ok {
		return v, true
	}
	return packedmap.Get(s.snap.Settings, key)
}

func (s *session) Set(key, value string) {
	s.mu.Lock()
	if s.changed == nil {
		s.changed = make(map[string]string, 2)
	}
	s.changed[key] = value
	s.mu.Unlock()
}

func (s *session) changes() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// SettingsView returns the session's settings with the changes made here.
// The map must not be modified.
func (s *session) SettingsView() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mergedLocked()
}

func (s *session) mergedLocked() map[string]string {
	out := packedmap.Map(s.snap.Settings)
	if out == nil && len(s.changed) > 0 {
		out = make(map[string]string, len(s.changed))
	}
	for k, v := range s.changed {
		out[k] = v
	}
	return out
}

// PackedSettings returns the settings with the changes made here, packed
// as they travel between servers: the bytes that came with the message
// when nothing changed.
func (s *session) PackedSettings() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.changed) == 0 {
		return s.snap.Settings
	}
	return packedmap.Pack(s.mergedLocked())
}

func (s *session) Bind(ctx context.Context, uid string) error {
	if err := bindStatusError(s.cluster.Bind(ctx, s.frontend(), s.snap.Id, uid)); err != nil {
		return fmt.Errorf("bind %q: %w", uid, err)
	}
	s.mu.Lock()
	s.uid = uid
	s.mu.Unlock()
	return nil
}

func bindStatusError(st clusterpb.BindStatus, err error) error {
	if err != nil {
		return err
	}
	switch st {
	case clusterpb.BindStatus_BIND_OK:
		return nil
	case clusterpb.BindStatus_BIND_UID_TAKEN:
		return handler.ErrUIDBound
	case clusterpb.BindStatus_BIND_ALREADY_BOUND:
		return handler.ErrAlreadyBound
	default:
		return handler.ErrSessionGone
	}
}

func (s *session) Push(ctx context.Context, route string, v any) error {
	return pushTargets(ctx, s.cluster, nil, route, v, []Target{TargetOf(s)}, true)
}

func (s *session) Kick(ctx context.Context, reason string) error {
	return kick(ctx, s.cluster, TargetOf(s), reason)
}

func kick(ctx context.Context, c Cluster, t Target, reason string) error {
	req := &clusterpb.KickRequest{Reason: reason, Epoch: t.FrontendEpoch}
	if t.SessionID != 0 {
		req.SessionIds = []int64{t.SessionID}
	} else {
		req.Uids = []string{t.UID}
	}
	n, err := c.Kick(ctx, t.FrontendID, req)
	if err != nil {
		return fmt.Errorf("kick %s on %s: %w", t.UID, t.FrontendID, err)
	}
	if n == 0 {
		return handler.ErrSessionGone
	}
	return nil
}

// encode turns a push body into bytes: []byte and json.RawMessage as is,
// anything else as JSON.
func encode(enc *flatjson.Encoders, v any) ([]byte, error) {
	switch b := v.(type) {
	case []byte:
		return b, nil
	case json.RawMessage:
		return b, nil
	}
	if enc != nil {
		return enc.Marshal(v)
	}
	return json.Marshal(v)
}

// SessionService lets backend code reach sessions it is not handling a
// message for: push to users, kick them.
type SessionService struct {
	cluster Cluster
	enc     flatjson.Encoders // push bodies' encoders, per type
}

// PushToUIDs sends one push to users, one message per frontend, and waits
// for the frontends' answers: it returns an error naming the users with no
// session (the others still got it).
func (ss *SessionService) PushToUIDs(ctx context.Context, route string, v any, targets []Target) error {
	return pushTargets(ctx, ss.cluster, &ss.enc, route, v, targets, true)
}

// PushToSession sends a push to one session and waits for the frontend's
// answer: handler.ErrSessionGone if it has no such session.
func (ss *SessionService) PushToSession(ctx context.Context, t Target, route string, v any) error {
	return pushTargets(ctx, ss.cluster, &ss.enc, route, v, []Target{t}, true)
}

// Kick kicks a user's session with reason; handler.ErrSessionGone if it was
// not there.
func (ss *SessionService) Kick(ctx context.Context, t Target, reason string) error {
	return kick(ctx, ss.cluster, t, reason)
}

// pushTargets encodes v once and sends one request per frontend instance
// naming its targets (by session id, or by uid for targets without one).
// With wait it reports the targets that had no session; without, it
// returns once sent (see rpc.Node.PushMany).
func pushTargets(ctx context.Context, c Cluster, enc *flatjson.Encoders, route string, v any, targets []Target, wait bool) error {
	if len(targets) == 0 {
		return nil
	}
	body, err := encode(enc, v)
	if err != nil {
		return fmt.Errorf("push %s: encode: %w", route, err)
	}
	reqs := make(map[string]*clusterpb.PushRequest, 2)
	var others []Target // of another instance of a frontend already in reqs
	for _, t := range targets {
		r := reqs[t.FrontendID]
		if r == nil {
			r = &clusterpb.PushRequest{Route: route, Body: body, Epoch: t.FrontendEpoch}
			reqs[t.FrontendID] = r
		} else if r.Epoch != t.FrontendEpoch {
			others = append(others, t)
			continue
		}
		if t.SessionID != 0 {
			r.SessionIds = append(r.SessionIds, t.SessionID)
		} else {
			r.Uids = append(r.Uids, t.UID)
		}
	}
	replies, err := c.PushMany(ctx, reqs, wait)
	var missing []string
	for _, rep := range replies {
		for _, id := range rep.MissingSessionIds {
			missing = append(missing, fmt.Sprintf("session %d", id))
		}
		missing = append(missing, rep.MissingUids...)
	}
	if len(missing) > 0 {
		err = errors.Join(err, fmt.Errorf("push %s: no session for %v: %w", route, missing, handler.ErrSessionGone))
	}
	if len(others) > 0 {
		// Rare: one frontend's sessions recorded under two instances (one of
		// them is gone and about to be dropped).
		err = errors.Join(err, pushTargets(ctx, c, enc, route, body, others, wait))
	}
	return err
}
