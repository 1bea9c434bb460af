package rpc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/shaddock/shaddock/handler"
)

// simCluster simulates the servers of one stateful type for placement: who
// is in which state and which keys each holds.
type simCluster struct {
	mem  *Membership
	held map[string]map[string]bool // server id → keys
	down map[string]bool            // servers that do not answer
}

func newSim(ids ...string) *simCluster {
	c := &simCluster{mem: NewMembership(), held: map[string]map[string]bool{}, down: map[string]bool{}}
	for _, id := range ids {
		c.add(id)
	}
	return c
}

func (c *simCluster) add(id string) {
	c.held[id] = map[string]bool{}
	c.mem.Upsert(Member{ID: id, Type: "room", State: StateRunning})
}

func (c *simCluster) setState(id string, st State) {
	m, _ := c.mem.Get(id)
	m.State = st
	c.mem.Upsert(m)
}

// place places key as Node.Place does, from the simulated answers, and
// records that the chosen server now holds it.
func (c *simCluster) place(key string) (string, error) {
	var answers []holdAnswer
	for _, m := range c.mem.Serving("room") {
		a := holdAnswer{m: m}
		if c.down[m.ID] {
			a.err = errors.New("no answer")
		} else if c.held[m.ID][key] {
			a.size = 1
		}
		answers = append(answers, a)
	}
	m, err := decidePlacement(key, answers, c.mem.Eligible("room"))
	if err != nil {
		return "", err
	}
	c.held[m.ID][key] = true
	return m.ID, nil
}

func TestPlacementFreshKeysArePomelos(t *testing.T) {
	c := newSim("room-b", "room-a", "room-c") // sorted by id for Pomelo's index
	ids := []string{"room-a", "room-b", "room-c"}
	for i := range 200 {
		key := fmt.Sprintf("r%d", i)
		got, err := c.place(key)
		if err != nil {
			t.Fatal(err)
		}
		if want := ids[PickIndex(key, 3)]; got != want {
			t.Fatalf("%s placed on %s, want %s (crc32 %% 3)", key, got, want)
		}
	}
}

func TestPlacementKeysStayPutWhenServersAreAdded(t *testing.T) {
	c := newSim("room-1", "room-2")
	before := map[string]string{}
	for i := range 300 {
		key := fmt.Sprintf("r%d", i)
		before[key], _ = c.place(key)
	}
	c.add("room-3")
	c.add("room-4")
	// Every held key stays where it is.
	for key, was := range before {
		if got, _ := c.place(key); got != was {
			t.Fatalf("%s moved from %s to %s when servers were added", key, was, got)
		}
	}
	// New keys spread over all four, as Pomelo's crc32 % 4 would.
	count := map[string]int{}
	ids := []string{"room-1", "room-2", "room-3", "room-4"}
	for i := range 2000 {
		key := fmt.Sprintf("new%d", i)
		got, _ := c.place(key)
		if want := ids[PickIndex(key, 4)]; got != want {
			t.Fatalf("new key %s on %s, want %s", key, got, want)
		}
		count[got]++
	}
	for _, id := range ids {
		if count[id] < 350 || count[id] > 650 {
			t.Fatalf("new keys spread %v: want about 500 each", count)
		}
	}
}

func TestPlacementDrainingServerKeepsItsKeysAndGetsNoNewOnes(t *testing.T) {
	c := newSim("room-1", "room-2", "room-3")
	owned := map[string]string{}
	for i := range 300 {
		key := fmt.Sprintf("r%d", i)
		owned[key], _ = c.place(key)
	}
	c.setState("room-2", StateDraining)
	for key, was := range owned {
		if got, _ := c.place(key); got != was {
			t.Fatalf("%s moved from %s to %s when room-2 began draining", key, was, got)
		}
	}
	for i := range 1000 {
		if got, _ := c.place(fmt.Sprintf("new%d", i)); got == "room-2" {
			t.Fatal("a new key was placed on the draining server")
		}
	}
	// Its keys emptied (or its drain timed out and it stopped): they are
	// placed afresh among the others on re-entry.
	c.setState("room-2", StateStopped)
	for key, was := range owned {
		if was != "room-2" {
			continue
		}
		c.held["room-2"][key] = false
		got, _ := c.place(key)
		if got == "room-2" {
			t.Fatalf("%s placed on the stopped server", key)
		}
	}
	// All draining: nowhere for a new key.
	c.setState("room-1", StateDraining)
	c.setState("room-3", StateDraining)
	if _, err := c.place("fresh"); err == nil {
		t.Fatal("a new key was placed with every server draining")
	}
}

func TestPlacementRefusesToGuessWhenAServerDoesNotAnswer(t *testing.T) {
	c := newSim("room-1", "room-2")
	key := "r1"
	home, _ := c.place(key)
	c.down[home] = true // a frozen server that holds the key
	if got, err := c.place(key); err == nil {
		t.Fatalf("placed on %s while the holder could not be asked", got)
	}
	// Once it is declared lost it is no longer asked: the key is placed
	// afresh on the other server.
	c.setState(home, StateLost)
	got, err := c.place(key)
	if err != nil || got == home {
		t.Fatalf("after the holder was lost: %s %v", got, err)
	}
}

func TestPlacementSplitHealsTowardsTheLargerPart(t *testing.T) {
	answers := []holdAnswer{
		{m: Member{ID: "room-1"}, size: 2},
		{m: Member{ID: "room-2"}, size: 5},
		{m: Member{ID: "room-3"}, size: 5},
	}
	m, err := decidePlacement("k", answers, nil)
	if err != nil || m.ID != "room-2" {
		t.Fatalf("got %s %v, want room-2 (largest, then lowest id)", m.ID, err)
	}
}

// Node.Place asks the servers over the cluster transport.
func TestPlaceAsksTheServers(t *testing.T) {
	fe, be, _ := startNodes(t) // be-1 holds "held"
	ctx := context.Background()
	for _, key := range []string{"held", "other"} {
		m, err := fe.Place(ctx, "chat", key)
		if err != nil || m.ID != "be-1" {
			t.Fatalf("%s: %v %v", key, m.ID, err)
		}
	}
	if _, err := fe.Place(ctx, "chat", "busy"); err == nil {
		t.Fatal("placed while the only server could not tell whether it holds the key")
	}
	if _, err := fe.Place(ctx, "area", "k"); err == nil {
		t.Fatal("placed on a type with no server")
	} else if herr := (*handler.Error)(nil); !errors.As(err, &herr) || herr.Code != handler.CodeUnavailable {
		t.Fatalf("err = %v, want 503", err)
	}
	be.Close()
	waitUntil(t, "be-1 down", func() bool { return len(fe.Membership().Serving("chat")) == 0 })
	if _, err := fe.Place(ctx, "chat", "held"); err == nil {
		t.Fatal("placed with the only server unreachable")
	}
}
