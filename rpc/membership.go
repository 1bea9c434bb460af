package rpc

import (
	"slices"
	"sync"
	"sync/atomic"
)

// Membership is a server's view of the cluster: who exists, in which state,
// and which peers this server currently cannot reach. Reads are lock-free
// (a copy-on-write snapshot), as routing reads it per message; changes are
// rare and rebuild the snapshot.
type Membership struct {
	mu       sync.Mutex // serialises writers
	group    string     // this server's group: routing stays in it (SetGroup)
	members  map[string]Member
	down     map[string]bool
	watchers []func()
	view     atomic.Pointer[view]
	version  atomic.Uint64
	replaced atomic.Uint64 // Replace calls: snapshots from the registry
}

type view struct {
	byID      map[string]Member
	eligible  map[string][]Member // running, reachable, sorted by id; per type; scoped to the group
	everyone  map[string][]Member // eligible, before the group scoping
	serving   map[string][]Member // running or draining, reachable, sorted by id; per type
	frontends map[string]bool     // types whose servers are frontends
	down      map[string]bool     // members this server cannot reach
}

// NewMembership returns an empty view.
func NewMembership() *Membership {
	m := &Membership{members: make(map[string]Member), down: make(map[string]bool)}
	m.view.Store(&view{byID: map[string]Member{}, eligible: map[string][]Member{}, everyone: map[string][]Member{}, serving: map[string][]Member{},
		frontends: map[string]bool{}, down: map[string]bool{}})
	return m
}

// SetGroup scopes routing to a group (the two-group rolling update): for a
// type with servers in group g, Eligible and Serving list only those and
// the servers of no group; a type with none in g is shared by every group.
// Servers count as "in g" in any state, so a group whose backends are
// restarting waits for them rather than borrowing the other group's. ""
// (the default) is no scoping.
func (m *Membership) SetGroup(g string) {
	m.mu.Lock()
	m.group = g
	m.rebuild()
}

// Replace sets the whole membership (the registry's snapshot).
func (m *Membership) Replace(members []Member) {
	m.mu.Lock()
	m.members = make(map[string]Member, len(members))
	for _, mem := range members {
		m.members[mem.ID] = mem
	}
	m.replaced.Add(1)
	m.rebuild()
}

// Upsert adds or changes one member.
func (m *Membership) Upsert(mem Member) {
	m.mu.Lock()
	m.members[mem.ID] = mem
	m.rebuild()
}

// Remove drops a member.
func (m *Membership) Remove(id string) {
	m.mu.Lock()
	delete(m.members, id)
	m.rebuild()
}

// SetDown records whether this server can reach the peer; a down peer is
// left out of routing until it is up again.
func (m *Membership) SetDown(id string, down bool) {
	m.mu.Lock()
	if m.down[id] == down {
		m.mu.Unlock()
		return
	}
	if down {
		m.down[id] = true
	} else {
		delete(m.down, id)
	}
	m.rebuild()
}

// rebuild publishes a new snapshot and notifies watchers; called with mu held,
// it releases it.
func (m *Membership) rebuild() {
	v := &view{byID: make(map[string]Member, len(m.members)), eligible: make(map[string][]Member),
		serving: make(map[string][]Member), frontends: make(map[string]bool), down: make(map[string]bool, len(m.down))}
	for id := range m.down {
		v.down[id] = true
	}
	for id, mem := range m.members {
		v.byID[id] = mem
		if mem.Frontend {
			v.frontends[mem.Type] = true
		}
		if m.down[id] {
			continue
		}
		if mem.State == StateRunning {
			v.eligible[mem.Type] = append(v.eligible[mem.Type], mem)
		}
		if mem.State == StateRunning || mem.State == StateDraining {
			v.serving[mem.Type] = append(v.serving[mem.Type], mem)
		}
	}
	byID := func(a, b Member) int { return compareIDs(a.ID, b.ID) }
	for _, list := range v.eligible {
		slices.SortFunc(list, byID)
	}
	for _, list := range v.serving {
		slices.SortFunc(list, byID)
	}
	v.everyone = v.eligible
	if m.group != "" {
		v.everyone = make(map[string][]Member, len(v.eligible))
		for typ, list := range v.eligible {
			v.everyone[typ] = slices.Clone(list)
		}
		inGroup := map[string]bool{} // types with a member of the group, in any state
		for _, mem := range m.members {
			if mem.Group == m.group {
				inGroup[mem.Type] = true
			}
		}
		other := func(mem Member) bool { return mem.Group != "" && mem.Group != m.group }
		for _, lists := range []map[string][]Member{v.eligible, v.serving} {
			for typ, list := range lists {
				if inGroup[typ] {
					lists[typ] = slices.DeleteFunc(list, other) // keeps the order
				}
			}
		}
	}
	m.view.Store(v)
	m.version.Add(1)
	watchers := slices.Clone(m.watchers)
	m.mu.Unlock()
	for _, w := range watchers {
		w()
	}
}

// compareIDs orders ids byte-wise, as DESIGN §6 requires everywhere.
func compareIDs(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Watch registers fn to run after every change, on the changing goroutine.
func (m *Membership) Watch(fn func()) {
	m.mu.Lock()
	m.watchers = append(m.watchers, fn)
	m.mu.Unlock()
}

// Get returns a member by id.
func (m *Membership) Get(id string) (Member, bool) {
	mem, ok := m.view.Load().byID[id]
	return mem, ok
}

// Eligible returns the running, reachable servers of a type, sorted by id.
// The slice is shared: do not modify it.
func (m *Membership) Eligible(typ string) []Member {
	return m.view.Load().eligible[typ]
}

// EligibleAnyGroup is Eligible without the group scoping of SetGroup: the
// running, reachable servers of a type in every group, sorted by id. A
// gate uses it to fall back on another group's connectors. The slice is
// shared: do not modify it.
func (m *Membership) EligibleAnyGroup(typ string) []Member {
	return m.view.Load().everyone[typ]
}

// Serving returns the servers of a type that serve what they hold: running
// or draining (no new keys, but the keys they hold stay), reachable; sorted
// by id. The slice is shared: do not modify it.
func (m *Membership) Serving(typ string) []Member {
	return m.view.Load().serving[typ]
}

// Usable reports whether instance i serves now: it is the member's current
// instance, running or draining, and reachable from here.
func (m *Membership) Usable(i Instance) bool {
	v := m.view.Load()
	mem, ok := v.byID[i.ID]
	return ok && sameInstance(mem, i) && (mem.State == StateRunning || mem.State == StateDraining) && !v.down[i.ID]
}

// Ended reports whether instance i is over as far as this view tells: its
// member is gone, was replaced by a higher epoch, or is lost, stopped or
// failed (an instance newer than the view's is not ended: the view lags). The sessions and state it held are gone with it (a lost server may
// still run behind a partition, but the cluster has given up on it).
// Stopping is not ended: a stopping server finishes its work.
func (m *Membership) Ended(i Instance) bool {
	mem, ok := m.view.Load().byID[i.ID]
	switch {
	case !ok:
		return true
	case mem.Epoch != 0 && i.Epoch != 0 && mem.Epoch > i.Epoch:
		return true // replaced
	case mem.Epoch != 0 && i.Epoch != 0 && mem.Epoch < i.Epoch:
		return false // a newer instance this view has not heard of yet
	}
	switch mem.State {
	case StateLost, StateStopped, StateFailed:
		return true
	}
	return false
}

// sameInstance reports whether mem is instance i; an epoch of 0 on either
// side (a server the master did not start) matches.
func sameInstance(mem Member, i Instance) bool {
	return mem.Epoch == i.Epoch || mem.Epoch == 0 || i.Epoch == 0
}

// Snapshots counts the whole memberships received (Replace calls): after the
// first, each one follows a reconnection to the registry, after which this
// server may have been declared lost while it could not tell.
func (m *Membership) Snapshots() uint64 { return m.replaced.Load() }

// FrontendType reports whether servers of typ are frontends (as far as the
// members known, in any state, tell).
func (m *Membership) FrontendType(typ string) bool { return m.view.Load().frontends[typ] }

// All returns every member, sorted by id.
func (m *Membership) All() []Member {
	v := m.view.Load()
	out := make([]Member, 0, len(v.byID))
	for _, mem := range v.byID {
		out = append(out, mem)
	}
	slices.SortFunc(out, func(a, b Member) int { return compareIDs(a.ID, b.ID) })
	return out
}

// Version increases with every change.
func (m *Membership) Version() uint64 { return m.version.Load() }
