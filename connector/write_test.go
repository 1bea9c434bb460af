package connector

import (
	"bytes"
	"io"
	"testing"

	"github.com/gobwas/ws"

	"github.com/shaddock/shaddock/protocol"
)

// The packages of one write share a WebSocket frame; raw entries (already
// framed bytes) split the run and are written as they are. Raw TCP gets the
// packages back to back.
func TestWritePutsAWritesPackagesInOneFrame(t *testing.T) {
	pkg := func(route string) []byte {
		// 100-byte bodies: two of them need the 16-bit frame length.
		body := []byte(`{"x":"` + string(bytes.Repeat([]byte("x"), 92)) + `"}`)
		b, err := protocol.EncodeDataPackage(&protocol.Message{Type: protocol.Push, Route: route, Body: body}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b, c := pkg("onA"), pkg("onB"), pkg("onC")
	raw := ws.MustCompileFrame(ws.NewPingFrame(nil))
	batch := []outbound{{b: a}, {b: b}, {b: raw, raw: true}, {b: c}}

	tcp := (&Session{}).appendFrames(batch, nil)
	if want := bytes.Join([][]byte{a, b, raw, c}, nil); !bytes.Equal(tcp, want) {
		t.Fatalf("tcp: got % x, want % x", tcp, want)
	}

	out := (&Session{ws: true}).appendFrames(batch, nil)
	r := bytes.NewReader(out)
	var frames [][]byte
	var ops []ws.OpCode
	for r.Len() > 0 {
		h, err := ws.ReadHeader(r)
		if err != nil {
			t.Fatal(err)
		}
		if !h.Fin || h.Masked {
			t.Fatalf("frame header %+v", h)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(r, p); err != nil {
			t.Fatal(err)
		}
		frames, ops = append(frames, p), append(ops, h.OpCode)
	}
	if len(frames) != 3 || ops[0] != ws.OpBinary || ops[1] != ws.OpPing || ops[2] != ws.OpBinary {
		t.Fatalf("got %d frames %v, want binary, ping, binary", len(frames), ops)
	}
	// The first frame holds two packages, decoded as any Pomelo client does.
	var dec protocol.Decoder
	dec.MaxBody = protocol.MaxBodyLen
	var routes []string
	for _, f := range [][]byte{frames[0], frames[2]} {
		if err := dec.Feed(f, func(p protocol.Package) error {
			m, err := protocol.DecodeMessage(p.Body, nil)
			routes = append(routes, m.Route)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if got := routes; len(got) != 3 || got[0] != "onA" || got[1] != "onB" || got[2] != "onC" {
		t.Fatalf("routes %v", got)
	}
}

// The flusher settles before it writes: it yields as long as a yield
// brings more dirty sessions (at most 4 times), so output that goroutines
// already runnable are about to queue (the other cluster streams' push
// batches) leaves in the same writes; with nothing arriving it stops after
// two. The yields are counted rather than scheduled, so the figures do not
// depend on what else the test binary runs.
func TestFlusherSettlesWhileOutputArrives(t *testing.T) {
	for _, tc := range []struct {
		name       string
		arriving   int // yields after which one more session is dirty
		wantYields int
	}{
		{"output keeps arriving", 10, 4},
		{"two more, then quiet", 2, 3},
		{"nothing arrives", 0, 2},
	} {
		f := newFlusher()
		yields := 0
		f.yield = func() {
			yields++
			if yields <= tc.arriving {
				f.mu.Lock()
				f.dirty = append(f.dirty, &Session{})
				f.mu.Unlock()
			}
		}
		f.settle()
		if yields != tc.wantYields || len(f.dirty) != min(yields, tc.arriving) {
			t.Errorf("%s: %d yields, %d dirty; want %d yields", tc.name, yields, len(f.dirty), tc.wantYields)
		}
	}
}
