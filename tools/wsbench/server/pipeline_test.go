package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/gobwas/ws"
)

// TestPipelinedFirstFrame sends the upgrade request and the first frame in
// one write. RFC 6455 §4.1 says a client must wait for the 101 first, so
// this only matters for misbehaving clients, but the outcome differs per
// candidate and shows who can lose bytes that were read ahead.
func TestPipelinedFirstFrame(t *testing.T) {
	want := map[string]string{
		"gobwas":  "echo",   // upgradeRW stops ws.Upgrader at the end of the headers
		"gws":     "echo",   // keeps the reader it was given
		"gorilla": "closed", // gorilla rejects read-ahead bytes and drops the connection
		"coder":   "echo",
		"netpoll": "lost", // ws.Upgrader's internal reader swallows the frame
	}
	for name, outcome := range want {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() { _ = impls[name](ln, config{readBuf: 512, writeBuf: 512, maxPayload: 64 << 10, respawn: true}) }()
			if got := pipelined(t, ln.Addr().String()); got != outcome {
				t.Errorf("got %s, want %s", got, outcome)
			}
		})
	}
}

func pipelined(t *testing.T, addr string) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	frame, err := ws.CompileFrame(ws.MaskFrameInPlace(ws.NewBinaryFrame([]byte("first"))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "closed"
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return "refused"
	}
	f, err := ws.ReadFrame(br)
	if err != nil {
		return "lost"
	}
	if !bytes.Equal(f.Payload, []byte("first")) {
		return "garbled"
	}
	return "echo"
}

// TestHeaderReaderStopsAtBlankLine feeds the request one byte at a time so
// the terminator is split across reads.
func TestHeaderReaderStopsAtBlankLine(t *testing.T) {
	const req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tail := range []string{"", "\r\n\r\nrest", "\x82\x85"} {
		br := bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(req+tail)), 16)
		got, err := io.ReadAll(&headerReader{br: br})
		if err != nil || string(got) != req {
			t.Fatalf("tail %q: read %q, %v", tail, got, err)
		}
		rest, _ := io.ReadAll(br)
		if string(rest) != tail {
			t.Fatalf("tail %q: left %q", tail, rest)
		}
	}
}
