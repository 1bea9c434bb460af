package app

import (
	"context"
	"log/slog"
	"slices"
	"sync"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/internal/routines"
	"github.com/shaddock/shaddock/metrics"
	"github.com/shaddock/shaddock/rpc"
)

// Reasons in the kick a client gets when the server holding its session's
// state (its room) is gone: it re-enters, and its key is placed again.
const (
	// ReasonServerRestarted: the server was lost (it died or was cut off),
	// or restarted; its state is gone.
	ReasonServerRestarted = "server restarted, please re-enter"
	// ReasonServerStopped: the server is stopping (removed, drained past
	// its drain timeout, or stopped by the master).
	ReasonServerStopped = "server stopped, please re-enter"
)

// stateful is a server type whose servers hold state per key (App.Stateful).
type stateful struct {
	setting string                 // the session setting holding a session's key
	holds   func(key string) int64 // how much this server holds for key; nil: its channels
}

// pin says which server instance holds the state of a session's key of one
// stateful type.
type pin struct {
	typ, key string
	inst     rpc.Instance
}

type typeKey struct{ typ, key string }

// keyPlacement is where this frontend's sessions with a key were placed, and
// how many of them there are: while there is one, the key has a member on
// that server, which therefore holds it.
type keyPlacement struct {
	inst rpc.Instance
	n    int
}

// placements is a frontend's record of where its sessions are placed, so
// that their messages keep going to the server holding their key, and so
// that they can be told when that server ends: sessions are kicked with a
// reason (ReasonServerRestarted, ReasonServerStopped) as soon as the
// membership shows the instance they are placed on lost, failed, stopping,
// stopped, removed or replaced, rather than left connected to state that is
// no more.
type placements struct {
	mem      *rpc.Membership
	log      *slog.Logger
	met      *metrics.Server // nil without a metricsPort; set before serving
	routines routines.Group

	mu        sync.Mutex
	bySession map[int64][]pin // session id → its pins, one per stateful type (most games have one)
	byInst    map[rpc.Instance]map[int64]handler.Session
	byKey     map[typeKey]*keyPlacement
	scan      bool
	running   bool
}

func newPlacements(mem *rpc.Membership, log *slog.Logger) *placements {
	p := &placements{mem: mem, log: log, bySession: map[int64][]pin{},
		byInst: map[rpc.Instance]map[int64]handler.Session{}, byKey: map[typeKey]*keyPlacement{}}
	mem.Watch(p.membershipChanged)
	return p
}

// get returns the pin of session id for typ.
func (p *placements) get(id int64, typ string) (pin, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pn := range p.bySession[id] {
		if pn.typ == typ {
			return pn, true
		}
	}
	return pin{}, false
}

// cached returns where this frontend's sessions with key are placed, if
// there are any and that instance still serves.
func (p *placements) cached(typ, key string) (rpc.Instance, bool) {
	p.mu.Lock()
	kp := p.byKey[typeKey{typ, key}]
	p.mu.Unlock()
	if kp == nil || !p.mem.Usable(kp.inst) {
		return rpc.Instance{}, false
	}
	return kp.inst, true
}

// pin records that s's key of typ is held by inst, replacing its previous
// pin for typ.
func (p *placements) pin(s handler.Session, typ, key string, inst rpc.Instance) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unpinTypeLocked(s.ID(), typ)
	p.bySession[s.ID()] = append(p.bySession[s.ID()], pin{typ, key, inst})
	if p.byInst[inst] == nil {
		p.byInst[inst] = map[int64]handler.Session{}
	}
	p.byInst[inst][s.ID()] = s
	tk := typeKey{typ, key}
	if kp := p.byKey[tk]; kp != nil && kp.inst == inst {
		kp.n++
	} else {
		// New, or the key moved (its old server ended): the sessions still
		// counted there are being kicked.
		p.byKey[tk] = &keyPlacement{inst: inst, n: 1}
	}
}

func (p *placements) unpinLocked(id int64, pn pin) {
	if ss := p.byInst[pn.inst]; ss != nil {
		delete(ss, id)
		if len(ss) == 0 {
			delete(p.byInst, pn.inst)
		}
	}
	tk := typeKey{pn.typ, pn.key}
	if kp := p.byKey[tk]; kp != nil && kp.inst == pn.inst {
		if kp.n--; kp.n <= 0 {
			delete(p.byKey, tk)
		}
	}
}

// unpin drops session id's pin for typ.
func (p *placements) unpin(id int64, typ string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unpinTypeLocked(id, typ)
	if len(p.bySession[id]) == 0 {
		delete(p.bySession, id)
	}
}

// unpinTypeLocked drops session id's pin for typ, if any.
func (p *placements) unpinTypeLocked(id int64, typ string) {
	p.bySession[id] = slices.DeleteFunc(p.bySession[id], func(pn pin) bool {
		if pn.typ == typ {
			p.unpinLocked(id, pn)
			return true
		}
		return false
	})
}

// forget drops a closed session's pins.
func (p *placements) forget(id int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pn := range p.bySession[id] {
		p.unpinLocked(id, pn)
	}
	delete(p.bySession, id)
}

func (p *placements) membershipChanged() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.scan = true
	if !p.running && !p.routines.Closed() {
		p.running = p.routines.Go(p.run)
	}
}

func (p *placements) close() { p.routines.Wait() }

// run kicks the sessions placed on instances that ended, until no change
// is left to look at.
func (p *placements) run() {
	for {
		p.mu.Lock()
		if !p.scan {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.scan = false
		type ended struct {
			inst     rpc.Instance
			reason   string
			state    string
			sessions []handler.Session
		}
		var gone []ended
		for inst, ss := range p.byInst {
			reason, state := p.endReason(inst)
			if reason == "" {
				continue
			}
			e := ended{inst: inst, reason: reason, state: state}
			for _, s := range ss {
				e.sessions = append(e.sessions, s)
			}
			gone = append(gone, e)
			// The sessions keep their pins until they close, so that
			// nothing they still send goes elsewhere.
			delete(p.byInst, inst)
		}
		p.mu.Unlock()
		for _, e := range gone {
			p.log.Info("kicking the sessions placed on a server that ended", "peer", e.inst.ID, "epoch", e.inst.Epoch,
				"state", e.state, "sessions", len(e.sessions), "reason", e.reason)
			n := 0
			for _, s := range e.sessions {
				if s.Kick(context.Background(), e.reason) == nil {
					n++
				}
			}
			p.met.Kicked(e.reason, n)
		}
	}
}

// endReason returns the kick reason for the sessions placed on inst, or ""
// while it serves them.
func (p *placements) endReason(inst rpc.Instance) (reason, state string) {
	m, ok := p.mem.Get(inst.ID)
	switch {
	case !ok:
		return ReasonServerStopped, "removed"
	case p.mem.Ended(inst):
		if m.State == rpc.StateStopped {
			return ReasonServerStopped, m.State.String()
		}
		return ReasonServerRestarted, m.State.String()
	case m.State == rpc.StateStopping && (m.Epoch == inst.Epoch || inst.Epoch == 0):
		return ReasonServerStopped, m.State.String()
	}
	return "", ""
}

// placeFor returns the instance holding s's key of stateful type typ,
// placing the key (and pinning s there) when s has no pin for it yet.
func (f *frontend) placeFor(ctx context.Context, s handler.Session, typ string, st stateful) (rpc.Instance, error) {
	key, ok := s.Get(st.setting)
	if !ok || key == "" {
		return rpc.Instance{}, handler.Errorf(handler.CodeBadRequest, "session has no %s", st.setting)
	}
	if inst, ok, err := f.pinnedFor(s, typ, key); ok {
		return inst, err
	}
	inst, ok := f.pins.cached(typ, key)
	if !ok {
		m, err := f.node.Place(ctx, typ, key)
		if err != nil {
			return rpc.Instance{}, err
		}
		inst = m.Instance()
	}
	f.pins.pin(s, typ, key, inst)
	// The instance may have ended since it was chosen, its end seen before
	// the pin existed: then nothing would kick s. Undo, and let the client
	// try again.
	if reason, _ := f.pins.endReason(inst); reason != "" {
		f.pins.unpin(s.ID(), typ)
		return rpc.Instance{}, handler.Errorf(handler.CodeUnavailable, "%s", reason)
	}
	return inst, nil
}

// pinnedFor is where s's messages of typ go when s is pinned there for key
// (ok false when it is not): the part of placeFor that never blocks.
func (f *frontend) pinnedFor(s handler.Session, typ, key string) (inst rpc.Instance, ok bool, err error) {
	pn, ok := f.pins.get(s.ID(), typ)
	if !ok || pn.key != key {
		return rpc.Instance{}, false, nil
	}
	return pn.inst, true, f.usable(pn.inst)
}

// usable answers a message for a pinned instance that does not serve now:
// 503, and the session is (or is about to be) kicked if it ended.
func (f *frontend) usable(inst rpc.Instance) error {
	if f.node.Membership().Usable(inst) {
		return nil
	}
	if reason, _ := f.pins.endReason(inst); reason != "" {
		return handler.Errorf(handler.CodeUnavailable, "%s", reason)
	}
	return handler.Errorf(handler.CodeUnavailable, "server unavailable")
}
