package packedmap

import (
	"maps"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, m := range []map[string]string{
		nil,
		{"rid": "room-1"},
		{"rid": "room-1", "": "empty key", "nul": "a\x00b", "long": string(make([]byte, 300))},
	} {
		p := Pack(m)
		if got := Map(p); !maps.Equal(got, m) {
			t.Fatalf("Map(Pack(%q)) = %q", m, got)
		}
		if Len(p) != len(m) {
			t.Fatalf("Len = %d, want %d", Len(p), len(m))
		}
		for k, v := range m {
			if got, ok := Get(p, k); !ok || got != v {
				t.Fatalf("Get(%q) = %q, %v; want %q", k, got, ok, v)
			}
		}
		if _, ok := Get(p, "absent"); ok {
			t.Fatal("Get found an absent key")
		}
	}
}

// Equal maps pack to equal bytes, whatever their iteration order.
func TestCanonical(t *testing.T) {
	a := map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"}
	want := string(Pack(a))
	for range 20 {
		if got := string(Pack(maps.Clone(a))); got != want {
			t.Fatalf("pack %q, then %q", want, got)
		}
	}
}

// Reading a key allocates only when it is found (its value).
func TestGetAllocs(t *testing.T) {
	p := Pack(map[string]string{"rid": "room-1", "uid": "u7"})
	if n := testing.AllocsPerRun(100, func() { Get(p, "absent") }); n != 0 {
		t.Fatalf("%v allocations for a missing key", n)
	}
	if n := testing.AllocsPerRun(100, func() { Get(p, "uid") }); n > 1 {
		t.Fatalf("%v allocations for a present key", n)
	}
}

// Malformed input never panics and reads as if it ended at the fault.
func FuzzPacked(f *testing.F) {
	f.Add(Pack(map[string]string{"rid": "room-1", "x": "y"}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{5, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		m := Map(b)
		if len(m) > Len(b) {
			t.Fatalf("%d entries in the map, Len %d", len(m), Len(b))
		}
		for k, v := range m {
			if got, ok := Get(b, k); !ok || (got != v && Len(b) == len(m)) {
				t.Fatalf("Get(%q) = %q, %v; map has %q", k, got, ok, v)
			}
		}
	})
}
