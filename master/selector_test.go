package master

import (
	"reflect"
	"testing"

	"github.com/shaddock/shaddock/proto/masterpb"
)

func TestSelected(t *testing.T) {
	type srv struct{ id, typ, group string }
	all := []srv{{"chat-a", "chat", "a"}, {"chat-b", "chat", "b"}, {"conn-a", "connector", "a"}, {"gate", "gate", ""}}
	for _, tc := range []struct {
		name string
		sel  *masterpb.Selector
		want []string
	}{
		{"nil picks all", nil, []string{"chat-a", "chat-b", "conn-a", "gate"}},
		{"empty picks all", &masterpb.Selector{}, []string{"chat-a", "chat-b", "conn-a", "gate"}},
		{"ids", &masterpb.Selector{Ids: []string{"gate", "chat-b"}}, []string{"chat-b", "gate"}},
		{"type", &masterpb.Selector{Types: []string{"chat"}}, []string{"chat-a", "chat-b"}},
		{"types", &masterpb.Selector{Types: []string{"chat", "gate"}}, []string{"chat-a", "chat-b", "gate"}},
		{"group", &masterpb.Selector{Groups: []string{"a"}}, []string{"chat-a", "conn-a"}},
		{"type and group", &masterpb.Selector{Types: []string{"chat"}, Groups: []string{"a"}}, []string{"chat-a"}},
		{"no match", &masterpb.Selector{Ids: []string{"nope"}}, nil},
	} {
		var got []string
		for _, s := range all {
			if selected(tc.sel, s.id, s.typ, s.group) {
				got = append(got, s.id)
			}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestStopPhasesFrontendsFirst(t *testing.T) {
	ts := []target{{"chat-2", false}, {"gate-1", true}, {"chat-1", false}, {"connector-2", true}, {"connector-1", true}}
	got := stopPhases(ts)
	want := [][]target{
		{{"connector-1", true}, {"connector-2", true}, {"gate-1", true}},
		{{"chat-1", false}, {"chat-2", false}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stopPhases:\n got %v\nwant %v", got, want)
	}
	if got := stopPhases([]target{{"chat-1", false}}); len(got) != 1 || got[0][0].id != "chat-1" {
		t.Errorf("backends only: %v", got)
	}
	if got := stopPhases(nil); len(got) != 0 {
		t.Errorf("nothing: %v", got)
	}
}
