package backend

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/shaddock/shaddock/internal/routines"
	"github.com/shaddock/shaddock/rpc"
)

// goneSessions drops channel members whose sessions are gone, on a
// goroutine of its own (the reports come from the transport's receivers and
// the membership's watchers, which must not block). Three things tell it:
//
//   - a push's reply: the frontend has no such session (closed, or the
//     frontend restarted and the session was its predecessor's);
//   - the membership: a frontend instance ended (lost, stopped, replaced).
//     A lost one may still run behind a partition: its sessions are also
//     kicked once it can be reached (rpc.Node.KickEventually), so none is
//     left connected and deaf;
//   - a new membership snapshot: this server reconnected to the registry,
//     so it may have been declared lost meanwhile and its sessions kicked
//     and moved elsewhere by their frontends; every member's session is
//     checked with its frontend.
type goneSessions struct {
	channels *ChannelService
	cluster  Cluster
	mem      *rpc.Membership
	log      *slog.Logger

	ctx      context.Context // cancelled by close
	cancel   context.CancelFunc
	routines routines.Group

	mu        sync.Mutex
	reported  []ref
	scan      bool   // the membership changed: look for ended instances
	verify    bool   // a new snapshot: check every session with its frontend
	snapshots uint64 // Membership.Snapshots when last looked at
	verified  uint64 // the snapshot count the last completed check was for
	running   bool
}

// errChecking answers placement while the members are being checked after a
// new snapshot: the rooms this server holds may be left over from before it
// was declared lost, and must not attract new members meanwhile.
var errChecking = errors.New("checking its members' sessions after reconnecting to the registry")

// checking reports whether members are being checked after a snapshot.
func (g *goneSessions) checking() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.verified != g.snapshots
}

// checkTimeout bounds one frontend's answer when sessions are checked.
const checkTimeout = 5 * time.Second

func newGoneSessions(cs *ChannelService, c Cluster, log *slog.Logger) *goneSessions {
	ctx, cancel := context.WithCancel(context.Background())
	g := &goneSessions{channels: cs, cluster: c, log: log, ctx: ctx, cancel: cancel}
	if c != nil && c.Membership() != nil {
		g.mem = c.Membership()
		g.snapshots = g.mem.Snapshots()
		g.verified = g.snapshots
		g.mem.Watch(g.membershipChanged)
	}
	return g
}

func (g *goneSessions) membershipChanged() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.scan = true
	if n := g.mem.Snapshots(); n != g.snapshots {
		if g.snapshots == 0 {
			g.verified = n // the first snapshot is the start: nothing is held yet
		} else {
			g.verify = true
		}
		g.snapshots = n
	}
	g.startLocked()
}

func (g *goneSessions) report(fe rpc.Instance, sessionIDs []int64, uids []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, id := range sessionIDs {
		g.reported = append(g.reported, ref{fe: fe, sid: id})
	}
	for _, u := range uids {
		g.reported = append(g.reported, ref{fe: fe, uid: u})
	}
	g.startLocked()
}

func (g *goneSessions) startLocked() {
	if g.running || g.routines.Closed() {
		return
	}
	g.running = g.routines.Go(g.run)
}

func (g *goneSessions) close() {
	g.routines.Close()
	g.cancel()
	g.routines.Wait()
}

// run does what was reported until nothing is left.
func (g *goneSessions) run() {
	for {
		g.mu.Lock()
		reported, scan, verify := g.reported, g.scan, g.verify
		g.reported, g.scan, g.verify = nil, false, false
		if len(reported) == 0 && !scan && !verify || g.ctx.Err() != nil {
			if g.ctx.Err() != nil {
				g.verified = g.snapshots
			}
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		if len(reported) > 0 {
			g.dropped("push found no session", g.channels.drop(reported), slog.LevelDebug)
		}
		if scan {
			g.dropEnded()
		}
		if verify {
			g.mu.Lock()
			upTo := g.snapshots
			g.mu.Unlock()
			g.verifyAll()
			g.mu.Lock()
			g.verified = upTo
			g.mu.Unlock()
		}
	}
}

// dropEnded drops the members of frontend instances that ended.
func (g *goneSessions) dropEnded() {
	ended := map[rpc.Instance]bool{}
	refs := g.channels.refsWhere(func(r ref) bool {
		e, ok := ended[r.fe]
		if !ok {
			e = g.mem.Ended(r.fe)
			ended[r.fe] = e
		}
		return e
	})
	if len(refs) == 0 {
		return
	}
	g.dropped("frontend ended", g.channels.drop(refs), slog.LevelInfo)
	// A lost frontend may be cut off rather than dead: kick what it may
	// still hold once it can be reached.
	lost := map[rpc.Instance][]ref{}
	for _, r := range refs {
		if m, ok := g.mem.Get(r.fe.ID); ok && m.State == rpc.StateLost && (m.Epoch == r.fe.Epoch || r.fe.Epoch == 0) {
			lost[r.fe] = append(lost[r.fe], r)
		}
	}
	for fe, rs := range lost {
		sids, uids := split(rs)
		g.cluster.KickEventually(fe, sids, uids, rpc.ReasonUndelivered)
	}
}

// verifyAll asks every frontend instance members point at which of their
// sessions it no longer has, and drops those. The frontends are asked in
// parallel; one that cannot be reached now is skipped (if it ended, the
// membership drops its members; if not, undelivered pushes kick them).
func (g *goneSessions) verifyAll() {
	byFE := map[rpc.Instance][]ref{}
	for _, r := range g.channels.refsWhere(func(ref) bool { return true }) {
		byFE[r.fe] = append(byFE[r.fe], r)
	}
	var (
		mu   sync.Mutex
		gone []ref
		wg   sync.WaitGroup
	)
	for fe, rs := range byFE {
		if !g.mem.Usable(fe) {
			continue
		}
		wg.Go(func() {
			sids, uids := split(rs)
			ctx, cancel := context.WithTimeout(g.ctx, checkTimeout)
			rep, err := g.cluster.Check(ctx, fe, sids, uids)
			cancel()
			if err != nil {
				g.log.Info("could not check a frontend's sessions after reconnecting to the registry", "peer", fe.ID, "err", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range rep.GoneSessionIds {
				gone = append(gone, ref{fe: fe, sid: id})
			}
			for _, u := range rep.GoneUids {
				gone = append(gone, ref{fe: fe, uid: u})
			}
		})
	}
	wg.Wait()
	g.dropped("session gone after this server reconnected", g.channels.drop(gone), slog.LevelInfo)
}

// dropped logs what was dropped and tells the game.
func (g *goneSessions) dropped(why string, out map[*Channel][]Target, level slog.Level) {
	if len(out) == 0 {
		return
	}
	n := 0
	for _, ts := range out {
		n += len(ts)
	}
	g.log.Log(g.ctx, level, "dropped channel members whose sessions are gone", "why", why, "members", n, "channels", len(out))
	g.channels.mu.Lock()
	hooks := g.channels.onDrop
	g.channels.mu.Unlock()
	for c, ts := range out {
		for _, fn := range hooks {
			ctx, cancel := context.WithTimeout(g.ctx, 10*time.Second)
			g.safely(func() { fn(ctx, c, ts) })
			cancel()
		}
	}
}

func (g *goneSessions) safely(fn func()) {
	defer func() {
		if r := recover(); r != nil {
			g.log.Error("channel drop hook panicked", "panic", r)
		}
	}()
	fn()
}

func split(rs []ref) (sids []int64, uids []string) {
	for _, r := range rs {
		if r.sid != 0 {
			sids = append(sids, r.sid)
		} else {
			uids = append(uids, r.uid)
		}
	}
	return sids, uids
}
