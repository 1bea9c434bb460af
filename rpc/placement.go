package rpc

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/shaddock/shaddock/handler"
)

// Placement of stateful keys (rooms, matches): which server of a type holds
// a key's state.
//
// The record of a placement is the state itself: the server that holds a
// key (Handlers.Holds reports more than 0 for it) is where the key is. A
// key nobody holds is placed fresh, on PickIndex(key, n) of the running
// servers of the type sorted by id: Pomelo's crc32 % n, so a fresh cluster
// places every key exactly as Pomelo (and chatofpomelo) would. Stability
// under change comes from the record, not from the hash: adding servers
// moves no held key (the holders answer for them) while new keys spread over
// the larger set; a draining server keeps its keys and gets no new ones; a
// server that ends takes its keys with it (the sessions placed on it are
// told), and they are placed fresh when their users come back. Rendezvous
// hashing would move fewer *unheld* keys on a change, but unheld keys have
// nothing to move, and it would give up Pomelo's placement.

// placeTimeout bounds the wait for each server's answer: a server that does
// not answer in time might hold the key, so placement fails (503) rather
// than guess and split a room.
const placeTimeout = 2 * time.Second

// Place returns the server of type typ that holds key, or the one key is
// placed on when nobody holds it. It asks every server of the type that
// serves (running or draining, reachable); if one of them cannot answer the
// key may be held there, and Place fails with a 503 rather than risk two
// servers holding one key.
func (n *Node) Place(ctx context.Context, typ, key string) (Member, error) {
	serving := n.mem.Serving(typ)
	if len(serving) == 0 {
		return Member{}, handler.Errorf(handler.CodeUnavailable, "no %s server available", typ)
	}
	ctx, cancel := context.WithTimeout(ctx, placeTimeout)
	defer cancel()
	answers := make([]holdAnswer, len(serving))
	var wg sync.WaitGroup
	for i, m := range serving {
		wg.Go(func() {
			size, err := n.holds(ctx, m.ID, key)
			answers[i] = holdAnswer{m, size, err}
		})
	}
	wg.Wait()
	m, err := decidePlacement(key, answers, n.mem.Eligible(typ))
	if err != nil {
		return Member{}, &handler.Error{Code: handler.CodeUnavailable, Msg: "server unavailable",
			Err: fmt.Errorf("place %s key %q: %w", typ, key, err)}
	}
	if holders := countHolders(answers); holders > 1 {
		n.log.Warn("key held by several servers; using the largest", "type", typ, "key", key, "holders", holders, "server", m.ID)
	}
	return m, nil
}

// holdAnswer is one server's answer to "do you hold the key?".
type holdAnswer struct {
	m    Member
	size int64
	err  error
}

// decidePlacement picks the server for key from the serving servers'
// answers: the holder (the largest, should several claim it: a split left
// by a partition heals towards the bigger part), else, if every server
// answered, the fresh placement among the running ones (eligible, sorted
// by id).
func decidePlacement(key string, answers []holdAnswer, eligible []Member) (Member, error) {
	var (
		best   *holdAnswer
		failed error
	)
	for i := range answers {
		a := &answers[i]
		switch {
		case a.err != nil:
			failed = fmt.Errorf("%s did not answer: %w", a.m.ID, a.err)
		case a.size > 0 && (best == nil || a.size > best.size):
			best = a
		}
	}
	if best != nil {
		return best.m, nil
	}
	if failed != nil {
		return Member{}, failed
	}
	m, err := Pick(key, eligible)
	if err != nil {
		return Member{}, fmt.Errorf("no running server for a new key: %w", err)
	}
	return m, nil
}

func countHolders(answers []holdAnswer) int {
	n := 0
	for _, a := range answers {
		if a.err == nil && a.size > 0 {
			n++
		}
	}
	return n
}
