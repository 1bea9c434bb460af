package backend

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
)

// ChannelService holds the named channels of this backend (Pomelo's
// channelService): groups of users to push to together.
type ChannelService struct {
	cluster Cluster
	log     *slog.Logger

	mu       sync.Mutex
	channels map[string]*Channel
}

func newChannelService(c Cluster, log *slog.Logger) *ChannelService {
	return &ChannelService{cluster: c, log: log, channels: make(map[string]*Channel)}
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
	delete(cs.channels, name)
	cs.mu.Unlock()
}

// Channel is a named group of users, each known with the frontend holding
// their session. Each method is atomic; a sequence of them (Pomelo's
// "push onAdd, then add") is not, because handlers run in parallel: callers
// that need one serialise it themselves (examples/chat locks per room).
type Channel struct {
	name string
	svc  *ChannelService

	mu      sync.RWMutex
	members []Target       // join order, as Pomelo's getMembers
	index   map[string]int // uid → position in members
}

// Name returns the channel name.
func (c *Channel) Name() string { return c.name }

// Add adds a user; it reports false if the uid was already a member.
func (c *Channel) Add(uid, frontendID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.index[uid]; ok {
		return false
	}
	c.index[uid] = len(c.members)
	c.members = append(c.members, Target{UID: uid, FrontendID: frontendID})
	return true
}

// Leave removes a user; it reports whether the uid was a member.
func (c *Channel) Leave(uid string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.index[uid]
	if !ok {
		return false
	}
	c.members = slices.Delete(c.members, i, i+1)
	delete(c.index, uid)
	for j := i; j < len(c.members); j++ {
		c.index[c.members[j].UID] = j
	}
	return true
}

// Member returns the frontend holding uid's session, if uid is a member.
func (c *Channel) Member(uid string) (frontendID string, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	i, ok := c.index[uid]
	if !ok {
		return "", false
	}
	return c.members[i].FrontendID, true
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
// a broken connection may have lost are kicked, so they reconnect. The
// error reports frontends that could not be reached.
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
	if err := pushTargets(ctx, c.svc.cluster, route, v, targets, false); err != nil {
		return fmt.Errorf("channel %s: %w", c.name, err)
	}
	return nil
}
