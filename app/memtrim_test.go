package app

import "testing"

func TestShouldTrim(t *testing.T) {
	const mb = 1 << 20
	base := heapState{allocs: 1000 * mb, live: 40 * mb, objects: 40 * mb, free: 0}
	for _, tc := range []struct {
		name string
		cur  heapState
		want bool
	}{
		{"nothing to reclaim", heapState{allocs: 1000 * mb, live: 40 * mb, objects: 40 * mb, free: 4 * mb}, false},
		{"quiet, much free", heapState{allocs: 1001 * mb, live: 40 * mb, objects: 40 * mb, free: 100 * mb}, true},
		{"quiet, much garbage", heapState{allocs: 1001 * mb, live: 40 * mb, objects: 140 * mb, free: 0}, true},
		{"busy", heapState{allocs: 1100 * mb, live: 40 * mb, objects: 40 * mb, free: 100 * mb}, false},
		{"under the floor", heapState{allocs: 1000 * mb, live: 2 * mb, objects: 2 * mb, free: 6 * mb}, false},
		{"under a quarter of the live heap", heapState{allocs: 1000 * mb, live: 100 * mb, objects: 100 * mb, free: 20 * mb}, false},
		{"over a quarter of the live heap", heapState{allocs: 1000 * mb, live: 100 * mb, objects: 100 * mb, free: 30 * mb}, true},
	} {
		if got := shouldTrim(base, tc.cur); got != tc.want {
			t.Errorf("%s: shouldTrim = %v, want %v", tc.name, got, tc.want)
		}
	}
}
