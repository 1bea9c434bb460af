package rpc

import (
	"context"
	"slices"
	"time"

	"github.com/shaddock/shaddock/proto/clusterpb"
)

// Reasons given to clients whose sessions the framework ends.
const (
	// ReasonUndelivered: a push to the session may not have reached it.
	ReasonUndelivered = "connection between servers lost; please reconnect"
)

// kickRetry bounds how long sessions of an unreachable frontend instance
// are retried: long enough for a partitioned host to come back, bounded so
// that nothing retries forever.
const (
	kickRetryFor   = 2 * time.Minute
	kickRetryEvery = time.Second
	kickTimeout    = 3 * time.Second
)

// pendingKick collects the sessions of one frontend instance to kick; one
// goroutine per instance delivers them, merging what arrives meanwhile.
type pendingKick struct {
	sessions map[int64]bool
	uids     map[string]bool
	reason   string
	since    time.Time
}

// KickEventually kicks sessions of frontend instance inst with reason:
// now if it can be reached, else retried (every second, for up to two
// minutes) while the instance may still hold them, that is until it is
// reached, replaced by a higher epoch, removed, or stopped. It is how a push
// that cannot be delivered ends its session instead of leaving it silently
// behind. It never blocks.
func (n *Node) KickEventually(inst Instance, sessionIDs []int64, uids []string, reason string) {
	n.kickEventually(inst, sessionIDs, uids, reason)
}

// kickEventually is KickEventually; it reports whether the sessions were
// the first pending for inst (later ones join them, and need no log line of
// their own).
func (n *Node) kickEventually(inst Instance, sessionIDs []int64, uids []string, reason string) (first bool) {
	if len(sessionIDs)+len(uids) == 0 {
		return false
	}
	n.kmu.Lock()
	p := n.kicks[inst]
	start := p == nil
	if start {
		p = &pendingKick{sessions: map[int64]bool{}, uids: map[string]bool{}, reason: reason, since: time.Now()}
		n.kicks[inst] = p
	}
	for _, id := range sessionIDs {
		p.sessions[id] = true
	}
	for _, u := range uids {
		p.uids[u] = true
	}
	n.kmu.Unlock()
	if start && !n.routines.Go(func() { n.deliverKicks(inst) }) {
		n.kmu.Lock()
		delete(n.kicks, inst)
		n.kmu.Unlock()
		n.log.Warn("node closing; sessions not kicked", "peer", inst.ID, "epoch", inst.Epoch, "sessions", len(sessionIDs)+len(uids))
	}
	return start
}

// deliverKicks kicks what is pending for inst until nothing is.
func (n *Node) deliverKicks(inst Instance) {
	attempts := 0
	for {
		n.kmu.Lock()
		p := n.kicks[inst]
		req := &clusterpb.KickRequest{Reason: p.reason, Epoch: inst.Epoch}
		for id := range p.sessions {
			req.SessionIds = append(req.SessionIds, id)
		}
		for u := range p.uids {
			req.Uids = append(req.Uids, u)
		}
		slices.Sort(req.SessionIds)
		slices.Sort(req.Uids)
		since := p.since
		n.kmu.Unlock()

		var err error
		if !n.mayHoldSessions(inst) {
			err = nil // its sessions ended with it
		} else {
			ctx, cancel := context.WithTimeout(n.ctx, kickTimeout)
			_, err = n.Kick(ctx, inst.ID, req)
			cancel()
		}
		n.kmu.Lock()
		if err == nil || time.Since(since) > kickRetryFor || n.ctx.Err() != nil {
			// Done with what was sent; what arrived meanwhile goes next.
			for _, id := range req.SessionIds {
				delete(p.sessions, id)
			}
			for _, u := range req.Uids {
				delete(p.uids, u)
			}
			if len(p.sessions)+len(p.uids) == 0 || n.ctx.Err() != nil {
				delete(n.kicks, inst)
				n.kmu.Unlock()
				switch {
				case err != nil && n.ctx.Err() == nil:
					n.log.Error("sessions whose pushes were not delivered could not be kicked", "peer", inst.ID,
						"epoch", inst.Epoch, "sessions", len(req.SessionIds)+len(req.Uids), "tried_for", time.Since(since).Round(time.Second), "err", err)
				case attempts > 0:
					n.log.Info("kicked sessions after retrying", "peer", inst.ID, "epoch", inst.Epoch, "attempts", attempts+1)
				}
				return
			}
			p.since = time.Now()
			n.kmu.Unlock()
			attempts = 0
			continue
		}
		n.kmu.Unlock()
		attempts++
		select {
		case <-n.ctx.Done():
		case <-time.After(kickRetryEvery):
		}
	}
}

// mayHoldSessions reports whether instance inst may still have sessions:
// it is a member, not replaced by a higher epoch, not stopped or failed. A
// lost instance may: it may be cut off rather than dead.
func (n *Node) mayHoldSessions(inst Instance) bool {
	mem, ok := n.mem.Get(inst.ID)
	if !ok || mem.Epoch != 0 && inst.Epoch != 0 && mem.Epoch > inst.Epoch {
		return false
	}
	return mem.State != StateStopped && mem.State != StateFailed
}
