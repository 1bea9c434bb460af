package master

import (
	"slices"

	"github.com/shaddock/shaddock/proto/masterpb"
)

// selected reports whether sel picks the server. Within ids, types and
// groups any listed value matches; every non-empty list must match (so
// --type chat --group a is the chat servers of group a). An empty selector
// picks every server.
func selected(sel *masterpb.Selector, id, typ, group string) bool {
	if ids := sel.GetIds(); len(ids) > 0 && !slices.Contains(ids, id) {
		return false
	}
	if types := sel.GetTypes(); len(types) > 0 && !slices.Contains(types, typ) {
		return false
	}
	if groups := sel.GetGroups(); len(groups) > 0 && !slices.Contains(groups, group) {
		return false
	}
	return true
}

// emptySelector reports whether sel picks everything.
func emptySelector(sel *masterpb.Selector) bool {
	return len(sel.GetIds()) == 0 && len(sel.GetTypes()) == 0 && len(sel.GetGroups()) == 0
}

// target is a server picked by an admin operation.
type target struct {
	id       string
	frontend bool
}

// stopPhases orders a stop: every frontend first (in parallel), then every
// backend, so that the session-close hooks frontends run while they stop can
// still reach backends. Each phase is sorted by id; empty phases are left
// out.
func stopPhases(ts []target) [][]target {
	var front, back []target
	for _, t := range ts {
		if t.frontend {
			front = append(front, t)
		} else {
			back = append(back, t)
		}
	}
	var phases [][]target
	for _, p := range [][]target{front, back} {
		if len(p) > 0 {
			slices.SortFunc(p, func(a, b target) int {
				switch {
				case a.id < b.id:
					return -1
				case a.id > b.id:
					return 1
				}
				return 0
			})
			phases = append(phases, p)
		}
	}
	return phases
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
