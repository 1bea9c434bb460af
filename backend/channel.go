package backend

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/shaddock/shaddock/internal/flatjson"
)

// ChannelService holds the named channels of this backend (Pomelo's
// channelService): groups of users to push to together.
//
// Members point at sessions of frontend instances, and the service drops
// those whose sessions are gone, without waiting for a leave that may
// never come: when the frontend instance ends (lost, stopped, or replaced by
// a restart: rpc.Membership.Ended), when a push finds the session gone,
// and, after this server reconnects to the registry (it may have been
// declared lost meanwhile, and its sessions moved elsewhere), for every
// session its frontend no longer has. OnDrop tells the game.
type ChannelService struct {
	cluster Cluster
	log     *slog.Logger
	enc     flatjson.Encoders // push bodies' encoders, per type

	// mu guards the channel map and the index; Add, Leave and drops take it
	// before a channel's own lock (pushes take only the channel's).
	mu       sync.Mutex
	channels map[string]*Channel
	index    map[ref]*indexEntry // the channels each member's session is in
	onDrop   []func(ctx context.Context, ch *Channel, dropped []Target)
}

// indexEntry is where a session is a member: its uid (a session is bound to
// one) and its channels.
type indexEntry struct {
	uid   string
	chans []*Channel
}

func newChannelService(c Cluster, log *slog.Logger) *ChannelService {
	return &ChannelService{cluster: c, log: log, channels: make(map[string]*Channel), index: make(map[ref]*indexEntry)}
}

// Get returns the named channel, or nil.
func (cs *ChannelService) Get(name string) *Channel {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.channels[name]
}

// GetOrCreate returns the named channel, creating it if needed.
func (cs *ChannelService) GetOrCreate(name string) *Channel {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.channels[name]
	if c == nil {
		c = &Channel{name: name, svc: cs, index: make(map[string]int)}
		cs.channels[name] = c
	}
	return c
}

// Destroy removes a channel.
func (cs *ChannelService) Destroy(name string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.channels[name]
	if c == nil {
		return
	}
	delete(cs.channels, name)
	c.mu.Lock()
	for _, m := range c.members {
		cs.unlinkLocked(m, c)
	}
	c.members, c.index = nil, map[string]int{}
	c.mu.Unlock()
}

// OnDrop registers fn to run after the service dropped members whose
// sessions are gone (see ChannelService), once per channel, for example to
// tell the others they left. It runs on a goroutine of its own, not under
// the channel's lock.
func (cs *ChannelService) OnDrop(fn func(ctx context.Context, ch *Channel, dropped []Target)) {
	cs.mu.Lock()
	cs.onDrop = append(cs.onDrop, fn)
	cs.mu.Unlock()
}

// Sessions returns how many sessions are members of some channel: what a
// backend reports as its connections to the master, so that a draining
// server is seen to be empty.
func (cs *ChannelService) Sessions() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.index)
}

// Size returns the members of the channel named key, 0 if there is none:
// how much state this server holds for a key of a stateful type (a room),
// for placement (rpc.Node.Place).
func (cs *ChannelService) Size(key string) int64 {
	if c := cs.Get(key); c != nil {
		return int64(c.Len())
	}
	return 0
}

func (cs *ChannelService) linkLocked(t Target, c *Channel) {
	r := refOf(t)
	e := cs.index[r]
	if e == nil {
		e = &indexEntry{uid: t.UID}
		cs.index[r] = e
	}
	if !slices.Contains(e.chans, c) {
		e.chans = append(e.chans, c)
	}
}

func (cs *ChannelService) unlinkLocked(t Target, c *Channel) {
	r := refOf(t)
	e := cs.index[r]
	if e == nil {
		return
	}
	e.chans = slices.DeleteFunc(e.chans, func(x *Channel) bool { return x == c })
	if len(e.chans) == 0 {
		delete(cs.index, r)
	}
}

// drop removes the members whose session is one of refs from every channel
// and returns what it removed, by channel.
func (cs *ChannelService) drop(refs []ref) map[*Channel][]Target {
	out := map[*Channel][]Target{}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, r := range refs {
		e := cs.index[r]
		if e == nil {
			continue
		}
		for _, c := range e.chans {
			c.mu.Lock()
			if i, ok := c.index[e.uid]; ok && refOf(c.members[i]) == r {
				out[c] = append(out[c], c.members[i])
				c.removeLocked(i)
			}
			c.mu.Unlock()
		}
		delete(cs.index, r)
	}
	return out
}

// refsWhere returns the indexed sessions for which match is true.
func (cs *ChannelService) refsWhere(match func(ref) bool) []ref {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var out []ref
	for r := range cs.index {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

// Channel is a named group of users, each known by the session holding it
// (a Target). Each method is atomic; a sequence of them (Pomelo's "push
// onAdd, then add") is not, because handlers run in parallel: callers that
// need one serialise it themselves (examples/chat locks per room).
type Channel struct {
	name string
	svc  *ChannelService

	mu      sync.RWMutex
	members []Target       // join order, as Pomelo's getMembers
	index   map[string]int // uid → position in members
}

// Name returns the channel name.
func (c *Channel) Name() string { return c.name }

// Add adds the user of t, or, if the uid is already a member, moves it to
// t's session (the user entered again, from a new session or another
// frontend): pushes then go there. It reports whether the uid is new.
func (c *Channel) Add(t Target) bool {
	c.svc.mu.Lock()
	defer c.svc.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.index[t.UID]; ok {
		if old := c.members[i]; old != t {
			c.svc.unlinkLocked(old, c)
			c.members[i] = t
			c.svc.linkLocked(t, c)
		}
		return false
	}
	c.index[t.UID] = len(c.members)
	c.members = append(c.members, t)
	c.svc.linkLocked(t, c)
	return true
}

// Leave removes a user, whichever session it is in; it reports whether the
// uid was a member.
func (c *Channel) Leave(uid string) bool {
	return c.removeIf(uid, func(Target) bool { return true })
}

// Remove removes t's user if it is a member through t's session, and
// reports whether it was: a session that ends leaves, without removing the
// user if it has entered again from another session meanwhile.
func (c *Channel) Remove(t Target) bool {
	return c.removeIf(t.UID, func(m Target) bool { return refOf(m) == refOf(t) })
}

// removeIf removes uid's member if match approves it.
func (c *Channel) removeIf(uid string, match func(Target) bool) bool {
	c.svc.mu.Lock()
	defer c.svc.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.index[uid]
	if !ok || !match(c.members[i]) {
		return false
	}
	c.svc.unlinkLocked(c.members[i], c)
	c.removeLocked(i)
	return true
}

// removeLocked removes members[i]; called with c.mu held.
func (c *Channel) removeLocked(i int) {
	delete(c.index, c.members[i].UID)
	c.members = slices.Delete(c.members, i, i+1)
	for j := i; j < len(c.members); j++ {
		c.index[c.members[j].UID] = j
	}
}

// Member returns the target of uid, if uid is a member.
func (c *Channel) Member(uid string) (Target, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	i, ok := c.index[uid]
	if !ok {
		return Target{}, false
	}
	return c.members[i], true
}

// Members returns the member uids in join order.
func (c *Channel) Members() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.UID
	}
	return out
}

// Len returns the number of members.
func (c *Channel) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.members)
}

// Push sends route and v to every member: v is encoded once and each
// frontend gets one message naming its members. It returns once the
// messages are sent (as Pomelo's pushMessage does, without waiting for the
// frontends); delivery is guaranteed by acknowledgement: members whose push
// a broken connection may have lost, or whose frontend could not be reached,
// are kicked so they reconnect (rpc.Node.KickEventually), and members whose
// session turns out to be gone are dropped. The error reports frontends
// that could not be reached.
func (c *Channel) Push(ctx context.Context, route string, v any) error {
	c.mu.RLock()
	targets := slices.Clone(c.members)
	c.mu.RUnlock()
	return c.push(ctx, route, v, targets)
}

// PushTo sends route and v to the named members only; uids that are not
// members are ignored.
func (c *Channel) PushTo(ctx context.Context, route string, v any, uids ...string) error {
	c.mu.RLock()
	targets := make([]Target, 0, len(uids))
	for _, uid := range uids {
		if i, ok := c.index[uid]; ok {
			targets = append(targets, c.members[i])
		}
	}
	c.mu.RUnlock()
	return c.push(ctx, route, v, targets)
}

func (c *Channel) push(ctx context.Context, route string, v any, targets []Target) error {
	if err := pushTargets(ctx, c.svc.cluster, &c.svc.enc, route, v, targets, false); err != nil {
		return fmt.Errorf("channel %s: %w", c.name, err)
	}
	return nil
}
