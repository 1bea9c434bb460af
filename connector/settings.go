package connector

import (
	"runtime"
	"sync"
	"unique"
	"weak"

	"github.com/shaddock/shaddock/internal/packedmap"
)

// Session settings are copy-on-write maps, and sessions of a game mostly
// hold the same few ones (a room id: 15,000 sessions in 150 rooms hold 150
// distinct maps), so a server shares equal small maps between its
// sessions: a one-entry map costs ~330 bytes, a pointer to a shared one 8.
// A shared map lives while a session holds it; the table keeps it weakly.

// Maps with more entries, or longer keys and values, are not shared.
const (
	internMaxEntries = 4
	internMaxBytes   = 256
)

// settingsBox holds a settings map, so that a shared one can be weakly
// referenced, and its packed form, which goes with every message the
// session forwards to a backend (PackedSettings): packed once per change.
type settingsBox struct {
	m      map[string]string
	packed []byte
}

// settingsTable is a server's table of shared settings maps.
type settingsTable struct {
	mu   sync.Mutex
	maps map[unique.Handle[string]]weak.Pointer[settingsBox]
}

// share returns the box holding a map equal to m: an existing one, or a
// new one holding m itself. m must not be modified afterwards. The packed
// form is also the table's key: it is canonical (sorted, each string
// length-prefixed), so equal maps, and only they, pack to equal bytes.
func (t *settingsTable) share(m map[string]string) *settingsBox {
	packed := packedmap.Pack(m)
	if len(m) == 0 || len(m) > internMaxEntries || len(packed) > internMaxBytes {
		return &settingsBox{m: m, packed: packed}
	}
	h := unique.Make(string(packed))
	t.mu.Lock()
	defer t.mu.Unlock()
	if wp, ok := t.maps[h]; ok {
		if b := wp.Value(); b != nil {
			return b
		}
	}
	b := &settingsBox{m: m, packed: packed}
	if t.maps == nil {
		t.maps = make(map[unique.Handle[string]]weak.Pointer[settingsBox])
	}
	t.maps[h] = weak.Make(b)
	runtime.AddCleanup(b, t.forget, h)
	return b
}

// forget drops a shared map nobody holds any more.
func (t *settingsTable) forget(h unique.Handle[string]) {
	t.mu.Lock()
	if wp, ok := t.maps[h]; ok && wp.Value() == nil {
		delete(t.maps, h)
	}
	t.mu.Unlock()
}

// size is the number of shared maps in the table (tests).
func (t *settingsTable) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.maps)
}
