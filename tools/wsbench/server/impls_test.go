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

// TestAllImplsEcho checks every candidate with WebSocket (or Pomelo-style
// TCP) round trips, a ping, and that the other protocol is refused.
func TestAllImplsEcho(t *testing.T) {
	for name, run := range impls {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() { _ = run(ln, config{readBuf: 512, writeBuf: 512, maxPayload: 64 << 10, respawn: true}) }()
			addr := ln.Addr().String()
			if name == "tcp" {
				testTCPEcho(t, addr)
				return
			}
			c, br, _, err := ws.Dial(t.Context(), "ws://"+addr+"/")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if br != nil {
				t.Fatal("unexpected buffered data after handshake")
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			r := bufio.NewReader(c)
			for _, size := range []int{1, 64, 200, 3000} {
				msg := bytes.Repeat([]byte{byte(size)}, size)
				if err := ws.WriteFrame(c, ws.MaskFrameInPlace(ws.NewBinaryFrame(append([]byte(nil), msg...)))); err != nil {
					t.Fatal(err)
				}
				got := readMessage(t, r)
				if !bytes.Equal(got, msg) {
					t.Fatalf("size %d: echo mismatch (%d bytes)", size, len(got))
				}
			}
			if err := ws.WriteFrame(c, ws.MaskFrameInPlace(ws.NewPingFrame([]byte("hi")))); err != nil {
				t.Fatal(err)
			}
			f, err := ws.ReadFrame(r)
			if err != nil || f.Header.OpCode != ws.OpPong || string(f.Payload) != "hi" {
				t.Fatalf("ping: got %+v %q, %v", f.Header, f.Payload, err)
			}
		})
	}
}

// readMessage reads one data message, joining fragments.
func readMessage(t *testing.T, r io.Reader) []byte {
	t.Helper()
	var msg []byte
	for {
		f, err := ws.ReadFrame(r)
		if err != nil {
			t.Fatal(err)
		}
		if f.Header.OpCode.IsControl() {
			continue
		}
		msg = append(msg, f.Payload...)
		if f.Header.Fin {
			return msg
		}
	}
}

func testTCPEcho(t *testing.T, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	for _, size := range []int{0, 64, 3000} {
		pkg := append([]byte{4, byte(size >> 16), byte(size >> 8), byte(size)}, bytes.Repeat([]byte{7}, size)...)
		if _, err := c.Write(pkg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(pkg))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pkg) {
			t.Fatalf("size %d: echo mismatch", size)
		}
	}
}
