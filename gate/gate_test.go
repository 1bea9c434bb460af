package gate

import (
	"context"
	"fmt"
	"testing"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/rpc"
)

func query(t *testing.T, cfg Config, body string) string {
	t.Helper()
	out, err := QueryEntry(cfg)(context.Background(), handler.Request{Route: Route, Body: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestQueryEntryMatchesPomeloDispatch(t *testing.T) {
	mem := rpc.NewMembership()
	// Registration order differs from id order on purpose.
	mem.Replace([]rpc.Member{
		{ID: "connector-server-2", Type: "connector", Host: "10.0.0.2", ClientHost: "c2.example", ClientPort: 3051, State: rpc.StateRunning},
		{ID: "connector-server-1", Type: "connector", Host: "10.0.0.1", ClientPort: 3050, State: rpc.StateRunning},
		{ID: "connector-server-3", Type: "connector", Host: "10.0.0.3", ClientPort: 3052, State: rpc.StateDraining},
		{ID: "chat-server-1", Type: "chat", Host: "10.0.0.9", State: rpc.StateRunning},
	})
	cfg := Config{Membership: mem}
	// abs(crc32) % 2 from npm crc 0.2.0: u1 → 0, user-42 → 1 (see rpc tests).
	if got := query(t, cfg, `{"uid":"u1"}`); got != `{"code":200,"host":"10.0.0.1","port":3050}` {
		t.Fatalf("u1: %s", got)
	}
	if got := query(t, cfg, `{"uid":"user-42"}`); got != `{"code":200,"host":"c2.example","port":3051}` {
		t.Fatalf("user-42: %s", got)
	}
	if got := query(t, cfg, `{}`); got != `{"code":500}` {
		t.Fatalf("no uid: %s", got)
	}
	if got := query(t, Config{Membership: rpc.NewMembership()}, `{"uid":"u1"}`); got != `{"code":500}` {
		t.Fatalf("no connectors: %s", got)
	}
}

func TestQueryEntryGroupAndReachability(t *testing.T) {
	mem := rpc.NewMembership()
	mem.SetGroup("b") // as app does for a gate of group b
	var ms []rpc.Member
	for i, g := range []string{"a", "b", "a", "b"} {
		ms = append(ms, rpc.Member{ID: fmt.Sprintf("connector-%d", i), Type: "connector", Group: g, ClientPort: 3050 + i, State: rpc.StateRunning})
	}
	mem.Replace(ms)
	for i := 0; i < 200; i++ {
		m, ok := Pick(Config{Membership: mem, Group: "b"}, fmt.Sprint("user", i))
		if !ok || m.Group != "b" {
			t.Fatalf("group b gate handed out %+v", m)
		}
	}
	mem.SetDown("connector-1", true)
	for i := 0; i < 200; i++ {
		if m, _ := Pick(Config{Membership: mem, Group: "b"}, fmt.Sprint("user", i)); m.ID != "connector-3" {
			t.Fatalf("unreachable connector handed out: %s", m.ID)
		}
	}
	// Group b's last connector drains (an update): its gate hands out group
	// a's rather than refuse a client that reached it.
	ms[3].State = rpc.StateDraining
	mem.Upsert(ms[3])
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		m, ok := Pick(Config{Membership: mem, Group: "b"}, fmt.Sprint("user", i))
		if !ok || m.Group != "a" {
			t.Fatalf("group b gate with no connector of its own handed out %+v, %v", m, ok)
		}
		seen[m.ID] = true
	}
	if len(seen) != 2 {
		t.Fatalf("fallback used %v, want both of group a's connectors", seen)
	}
	// None reachable from the gate (say, registered a moment ago and not
	// connected from here yet): a running one is handed out, of its group
	// first, rather than a refusal; a draining one never.
	for _, id := range []string{"connector-0", "connector-1", "connector-2", "connector-3"} {
		mem.SetDown(id, true)
	}
	for i := 0; i < 50; i++ {
		if m, ok := Pick(Config{Membership: mem, Group: "b"}, fmt.Sprint("user", i)); !ok || m.ID != "connector-1" {
			t.Fatalf("no reachable connector: handed out %+v, %v; want group b's running connector-1", m, ok)
		}
	}
	ms[1].State = rpc.StateDraining
	mem.Upsert(ms[1])
	if m, ok := Pick(Config{Membership: mem, Group: "b"}, "user1"); !ok || m.Group != "a" {
		t.Fatalf("no reachable connector, group b draining: handed out %+v, %v; want group a's", m, ok)
	}
	ms[1].State = rpc.StateRunning
	mem.Upsert(ms[1])
	for _, id := range []string{"connector-0", "connector-2", "connector-3"} { // connector-1 stays cut off
		mem.SetDown(id, false)
	}

	// A connector of no group serves every group.
	mem.Upsert(rpc.Member{ID: "connector-9", Type: "connector", ClientPort: 3059, State: rpc.StateRunning})
	for i := 0; i < 200; i++ {
		if m, _ := Pick(Config{Membership: mem, Group: "b"}, fmt.Sprint("user", i)); m.ID != "connector-9" {
			t.Fatalf("group b gate with the ungrouped connector-9 eligible handed out %s", m.ID)
		}
	}
}
