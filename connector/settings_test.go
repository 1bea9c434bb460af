package connector

import (
	"maps"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/shaddock/shaddock/internal/packedmap"
)

func sameMap(a, b map[string]string) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// Sessions with equal small settings share one map; a change to one
// session's settings leaves the others' alone; shared maps nobody holds
// leave the table.
func TestSettingsShared(t *testing.T) {
	srv := startServer(t, Config{})
	a, b, c := newSession(srv.Server, 1, nil), newSession(srv.Server, 2, nil), newSession(srv.Server, 3, nil)
	for _, s := range []*Session{a, b, c} {
		s.Set("rid", "room-1")
	}
	if !sameMap(a.SettingsView(), b.SettingsView()) || !sameMap(a.SettingsView(), c.SettingsView()) {
		t.Fatal("equal settings are not shared")
	}
	b.Set("rid", "room-2")
	c.Set("x", "1")
	if v, _ := a.Get("rid"); v != "room-1" || len(a.SettingsView()) != 1 {
		t.Fatalf("a's settings changed: %v", a.SettingsView())
	}
	if v, _ := b.Get("rid"); v != "room-2" {
		t.Fatalf("b: %v", b.SettingsView())
	}
	if got := c.Settings(); len(got) != 2 || got["rid"] != "room-1" || got["x"] != "1" {
		t.Fatalf("c: %v", got)
	}
	// Large settings are not shared, and still work.
	big := strings.Repeat("v", internMaxBytes)
	a.Set("big", big)
	b.Set("rid", "room-1")
	b.Set("big", big)
	if sameMap(a.SettingsView(), b.SettingsView()) {
		t.Fatal("a large map was shared")
	}
	if v, _ := b.Get("big"); v != big {
		t.Fatal("large setting lost")
	}
	// The packed form that goes to backends follows every change.
	for _, s := range []*Session{a, b, c} {
		if got := packedmap.Map(s.PackedSettings()); !maps.Equal(got, s.SettingsView()) {
			t.Fatalf("session %d: packed %v, settings %v", s.id, got, s.SettingsView())
		}
	}
	if srv.settings.size() == 0 {
		t.Fatal("no shared map in the table")
	}
	a, b, c = nil, nil, nil
	waitFor(t, "unused shared maps dropped", func() bool {
		runtime.GC()
		return srv.settings.size() == 0
	})
}

// Maps whose strings hold NULs are not taken for other maps: the table's
// key is the packed form, which prefixes each string with its length (a
// NUL-separated key made these two equal).
func TestSettingsSharedKeyUnambiguous(t *testing.T) {
	srv := startServer(t, Config{})
	a, b := newSession(srv.Server, 1, nil), newSession(srv.Server, 2, nil)
	a.Set("a", "1\x00b\x001")
	b.Set("a", "1")
	b.Set("b", "1")
	if v, _ := a.Get("a"); v != "1\x00b\x001" || len(a.SettingsView()) != 1 {
		t.Fatalf("a: %q", a.SettingsView())
	}
	if v, _ := b.Get("a"); v != "1" || len(b.SettingsView()) != 2 {
		t.Fatalf("b: %q", b.SettingsView())
	}
}
