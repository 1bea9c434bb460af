package backend

import (
	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/rpc"
)

// Target names a user's session: the uid, the frontend instance holding the
// session (id and epoch) and the session's id there. Channels record members
// as targets, so a push goes to exactly that session: never to a session a
// restarted frontend (a new epoch, whose session ids start again) gave the
// same id, nor to a later session of the same uid. A target with SessionID
// 0 names whichever session of that frontend is bound to UID, and epoch 0
// whichever instance runs (Pomelo's (uid, sid) pairs).
type Target struct {
	UID           string
	FrontendID    string
	FrontendEpoch uint64
	SessionID     int64
}

// Frontend returns the frontend instance holding the session.
func (t Target) Frontend() rpc.Instance {
	return rpc.Instance{ID: t.FrontendID, Epoch: t.FrontendEpoch}
}

// epochOf is implemented by the sessions the framework hands handlers
// (a connector's live ones and a backend's snapshots).
type epochOf interface{ FrontendEpoch() uint64 }

// TargetOf returns the target of a session a handler got: a request's
// session, or the session a remote was called for (App.CallFor).
func TargetOf(s handler.Session) Target {
	t := Target{UID: s.UID(), FrontendID: s.FrontendID(), SessionID: s.ID()}
	if e, ok := s.(epochOf); ok {
		t.FrontendEpoch = e.FrontendEpoch()
	}
	return t
}

// ref identifies a member's session in the channel service's index: by
// session id, or by uid for targets without one.
type ref struct {
	fe  rpc.Instance
	sid int64
	uid string // only when sid is 0
}

func refOf(t Target) ref {
	r := ref{fe: t.Frontend(), sid: t.SessionID}
	if r.sid == 0 {
		r.uid = t.UID
	}
	return r
}
