package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

func TestHeaderMatchesGobwas(t *testing.T) {
	for _, n := range []int64{0, 1, 125, 126, 200, 0xffff, 0x10000, 1 << 20} {
		for _, masked := range []bool{false, true} {
			h := ws.Header{Fin: n%2 == 0, OpCode: ws.OpBinary, Length: n, Masked: masked}
			if masked {
				h.Mask = [4]byte{1, 2, 3, 4}
			}
			var b bytes.Buffer
			if err := ws.WriteHeader(&b, h); err != nil {
				t.Fatal(err)
			}
			raw := b.Bytes()
			if got := headerLen(raw[1]); got != len(raw) {
				t.Fatalf("headerLen(%+v) = %d, want %d", h, got, len(raw))
			}
			if got := parseHeader(raw); got != h {
				t.Fatalf("parseHeader = %+v, want %+v", got, h)
			}
			if masked {
				continue
			}
			var out [ws.MaxHeaderSize]byte
			if k := putHeader(out[:], h.Fin, h.OpCode, int(n)); !bytes.Equal(out[:k], raw) {
				t.Fatalf("putHeader = % x, want % x", out[:k], raw)
			}
		}
	}
}

// TestAllocs documents why the hot path encodes headers itself: gobwas's
// ReadHeader/WriteHeader allocate a small slice per call.
func TestAllocs(t *testing.T) {
	raw := []byte{0x82, 0x80 | 64, 1, 2, 3, 4}
	var sink ws.Header
	if n := testing.AllocsPerRun(100, func() { sink = parseHeader(raw) }); n != 0 {
		t.Errorf("parseHeader allocates %v", n)
	}
	var out [ws.MaxHeaderSize]byte
	if n := testing.AllocsPerRun(100, func() { putHeader(out[:], true, ws.OpBinary, 64) }); n != 0 {
		t.Errorf("putHeader allocates %v", n)
	}
	br := bytes.NewReader(raw)
	gobwasRead := testing.AllocsPerRun(100, func() { br.Reset(raw); sink, _ = ws.ReadHeader(br) })
	gobwasWrite := testing.AllocsPerRun(100, func() { _ = ws.WriteHeader(io.Discard, sink) })
	t.Logf("allocs per call: ws.ReadHeader %v, ws.WriteHeader %v", gobwasRead, gobwasWrite)
}

// TestGobwasEcho runs the gobwas echo end to end through the sniffer,
// including frames that arrive in two pieces after an idle wait.
func TestGobwasEcho(t *testing.T) {
	for _, cfg := range []config{
		{maxPayload: 64 << 10},
		{maxPayload: 64 << 10, respawn: true, idleSpawn: true},
		{maxPayload: 64 << 10, writev: true},
	} {
		testGobwasEcho(t, cfg)
	}
}

func testGobwasEcho(t *testing.T, cfg config) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { _ = runGobwas(ln, cfg) }()

	c, br, _, err := ws.Dial(t.Context(), "ws://"+ln.Addr().String()+"/")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if br != nil {
		t.Fatal("unexpected buffered data after handshake")
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	for _, size := range []int{5, 200, 5000, 60000} { // 5000+ exceed the pooled reader
		msg := bytes.Repeat([]byte("x"), size)
		f := ws.MaskFrameInPlace(ws.NewBinaryFrame(append([]byte(nil), msg...)))
		frame, err := ws.CompileFrame(f)
		if err != nil {
			t.Fatal(err)
		}
		// Send the frame in two parts with a pause, so the server
		// goes through the idle wait mid-frame.
		if _, err := c.Write(frame[:3]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		if _, err := c.Write(frame[3:]); err != nil {
			t.Fatal(err)
		}
		got, err := ws.ReadFrame(r)
		if err != nil {
			t.Fatal(err)
		}
		if got.Header.OpCode != ws.OpBinary || !got.Header.Fin || !bytes.Equal(got.Payload, msg) {
			t.Fatalf("%+v size %d: bad echo %+v", cfg, size, got.Header)
		}
	}
}

// TestIdleWaitNoAlloc checks that waiting for readability allocates nothing.
func TestIdleWaitNoAlloc(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c2, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c1.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	rc, err := c2.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := waitReadable(rc); err != nil { // data pending: returns at once
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = waitReadable(rc) }); n != 0 {
		t.Fatalf("waitReadable allocates %v", n)
	}
	// The peek left the byte in the socket.
	var b [1]byte
	if _, err := io.ReadFull(c2, b[:]); err != nil || b[0] != 1 {
		t.Fatalf("read %v, %v", b, err)
	}
}
