package rpc

import (
	"slices"
	"testing"
)

func ids(ms []Member) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

// TestMembershipGroupScoping: a grouped server routes within its group for
// the types its group has (in any state), shares ungrouped servers, and
// uses every server of a type its group lacks.
func TestMembershipGroupScoping(t *testing.T) {
	mem := NewMembership()
	mem.Replace([]Member{
		{ID: "chat-a-1", Type: "chat", Group: "a", State: StateRunning},
		{ID: "chat-b-1", Type: "chat", Group: "b", State: StateRunning},
		{ID: "chat-x", Type: "chat", State: StateRunning}, // no group: serves both
		{ID: "auth-b-1", Type: "auth", Group: "b", State: StateRunning},
		{ID: "auth-b-2", Type: "auth", Group: "b", State: StateDraining},
	})
	if got := ids(mem.Eligible("chat")); !slices.Equal(got, []string{"chat-a-1", "chat-b-1", "chat-x"}) {
		t.Fatalf("unscoped chat: %v", got)
	}
	mem.SetGroup("a")
	if got := ids(mem.Eligible("chat")); !slices.Equal(got, []string{"chat-a-1", "chat-x"}) {
		t.Errorf("group a, chat eligible: %v, want chat-a-1 and the ungrouped chat-x", got)
	}
	if got := ids(mem.Serving("chat")); !slices.Equal(got, []string{"chat-a-1", "chat-x"}) {
		t.Errorf("group a, chat serving: %v", got)
	}
	// Group a has no auth server: it uses group b's.
	if got := ids(mem.Serving("auth")); !slices.Equal(got, []string{"auth-b-1", "auth-b-2"}) {
		t.Errorf("group a, auth serving: %v, want every auth server", got)
	}
	if got := ids(mem.Eligible("auth")); !slices.Equal(got, []string{"auth-b-1"}) {
		t.Errorf("group a, auth eligible: %v", got)
	}

	if got := ids(mem.EligibleAnyGroup("chat")); !slices.Equal(got, []string{"chat-a-1", "chat-b-1", "chat-x"}) {
		t.Errorf("group a, chat in any group: %v", got)
	}

	// Group a's chat server restarts: group a waits for it (plus the
	// ungrouped one) rather than borrowing group b's.
	mem.Upsert(Member{ID: "chat-a-1", Type: "chat", Group: "a", State: StateStopped})
	if got := ids(mem.Eligible("chat")); !slices.Equal(got, []string{"chat-x"}) {
		t.Errorf("group a while chat-a-1 restarts: %v, want only chat-x", got)
	}
	mem.Remove("chat-x")
	if got := ids(mem.Eligible("chat")); len(got) != 0 {
		t.Errorf("group a with its chat server stopped and no ungrouped one: %v, want none", got)
	}
	// Unreachable group members are left out as usual.
	mem.Upsert(Member{ID: "chat-a-1", Type: "chat", Group: "a", State: StateRunning})
	mem.SetDown("chat-a-1", true)
	if got := ids(mem.Eligible("chat")); len(got) != 0 {
		t.Errorf("group a with chat-a-1 down: %v", got)
	}
	mem.SetDown("chat-a-1", false)
	if got := ids(mem.Eligible("chat")); !slices.Equal(got, []string{"chat-a-1"}) {
		t.Errorf("group a with chat-a-1 up again: %v", got)
	}
	// Get is not scoped: a push or a call to a known instance still finds it.
	if _, ok := mem.Get("chat-b-1"); !ok {
		t.Error("Get must see servers of other groups")
	}
	mem.SetGroup("")
	if got := ids(mem.Eligible("chat")); !slices.Equal(got, []string{"chat-a-1", "chat-b-1"}) {
		t.Errorf("unscoped again: %v", got)
	}
}
