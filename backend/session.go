package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/proto/clusterpb"
)

// session is the handler.Session a backend handler gets: a snapshot of the
// frontend session, whose changes go back with the reply (settings) or to
// the frontend at once (bind, push, kick).
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
	v, ok := s.snap.Settings[key]
	return v, ok
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

func (s *session) Bind(ctx context.Context, uid string) error {
	if err := bindStatusError(s.cluster.Bind(ctx, s.snap.FrontendId, s.snap.Id, uid)); err != nil {
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
	return pushTo(ctx, s.cluster, s.snap.FrontendId, route, v, []int64{s.snap.Id}, nil)
}

func (s *session) Kick(ctx context.Context, reason string) error {
	n, err := s.cluster.Kick(ctx, s.snap.FrontendId, &clusterpb.KickRequest{SessionIds: []int64{s.snap.Id}, Reason: reason})
	if err != nil {
		return err
	}
	if n == 0 {
		return handler.ErrSessionGone
	}
	return nil
}

// encode turns a push body into bytes: []byte and json.RawMessage as is,
// anything else as JSON.
func encode(v any) ([]byte, error) {
	switch b := v.(type) {
	case []byte:
		return b, nil
	case json.RawMessage:
		return b, nil
	}
	return json.Marshal(v)
}

func pushTo(ctx context.Context, c Cluster, frontendID, route string, v any, sids []int64, uids []string) error {
	body, err := encode(v)
	if err != nil {
		return fmt.Errorf("push %s: encode: %w", route, err)
	}
	rep, err := c.Push(ctx, frontendID, &clusterpb.PushRequest{Route: route, Body: body, SessionIds: sids, Uids: uids})
	if err != nil {
		return err
	}
	if len(rep.MissingSessionIds) > 0 || len(rep.MissingUids) > 0 {
		return fmt.Errorf("push %s to %s: %w", route, frontendID, handler.ErrSessionGone)
	}
	return nil
}

// Target names a user's session: the uid and the frontend holding it (as
// channels record members).
type Target struct {
	UID        string
	FrontendID string
}

// SessionService lets backend code reach sessions it is not handling a
// message for: push to users, kick them.
type SessionService struct {
	cluster Cluster
}

// PushToUIDs sends one push to users, one message per frontend, and waits
// for the frontends' answers: it returns an error naming the users with no
// session (the others still got it).
func (ss *SessionService) PushToUIDs(ctx context.Context, route string, v any, targets []Target) error {
	return pushTargets(ctx, ss.cluster, route, v, targets, true)
}

// pushTargets encodes v once and sends one request per frontend naming its
// targets. With wait it reports the targets that had no session; without,
// it returns once sent (see rpc.Node.PushMany).
func pushTargets(ctx context.Context, c Cluster, route string, v any, targets []Target, wait bool) error {
	if len(targets) == 0 {
		return nil
	}
	body, err := encode(v)
	if err != nil {
		return fmt.Errorf("push %s: encode: %w", route, err)
	}
	reqs := make(map[string]*clusterpb.PushRequest, 2)
	for _, t := range targets {
		r := reqs[t.FrontendID]
		if r == nil {
			r = &clusterpb.PushRequest{Route: route, Body: body}
			reqs[t.FrontendID] = r
		}
		r.Uids = append(r.Uids, t.UID)
	}
	replies, err := c.PushMany(ctx, reqs, wait)
	var missing []string
	for _, rep := range replies {
		missing = append(missing, rep.MissingUids...)
	}
	if len(missing) > 0 {
		err = errors.Join(err, fmt.Errorf("push %s: no session for %v: %w", route, missing, handler.ErrSessionGone))
	}
	return err
}

// PushToSession sends a push to one session of a frontend.
func (ss *SessionService) PushToSession(ctx context.Context, frontendID string, sessionID int64, route string, v any) error {
	return pushTo(ctx, ss.cluster, frontendID, route, v, []int64{sessionID}, nil)
}

// KickUID kicks a user's session on a frontend and reports whether it existed.
func (ss *SessionService) KickUID(ctx context.Context, frontendID, uid, reason string) (bool, error) {
	n, err := ss.cluster.Kick(ctx, frontendID, &clusterpb.KickRequest{Uids: []string{uid}, Reason: reason})
	return n > 0, err
}
