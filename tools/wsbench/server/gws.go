package main

import (
	"bufio"
	"net"
	"net/http"
	"time"

	"github.com/lxzan/gws"
)

type gwsEcho struct {
	gws.BuiltinEventHandler
	stackWork int
}

func (gwsEcho) OnOpen(*gws.Conn) { sessions.Add(1) }

func (gwsEcho) OnClose(*gws.Conn, error) { sessions.Add(-1) }

// OnPing echoes the ping payload as RFC 6455 requires; gws's
// BuiltinEventHandler answers with an empty pong.
func (gwsEcho) OnPing(c *gws.Conn, payload []byte) { _ = c.WritePong(payload) }

func (e gwsEcho) OnMessage(c *gws.Conn, m *gws.Message) {
	work(e.stackWork)
	_ = c.WriteMessage(m.Opcode, m.Bytes())
	_ = m.Close()
}

// runGws serves the echo with lxzan/gws: UpgradeFromConn on the sniffed
// connection (exactly what gws.Server.RunListener does internally), a small
// read buffer, no parallel message processing, no compression, no UTF-8
// check. gws keeps the bufio.Reader we pass for the life of the connection,
// so the sniffer allocates it at the configured size.
func runGws(ln net.Listener, cfg config) error {
	readBuf := cfg.readBuf
	if readBuf == 0 {
		readBuf = 4096 // gws's default ReadBufferSize
	}
	up := gws.NewUpgrader(gwsEcho{stackWork: cfg.stackWork}, &gws.ServerOption{
		ReadBufferSize:     readBuf,
		ReadMaxPayloadSize: int(cfg.maxPayload),
		ParallelEnabled:    false,
		CheckUtf8Enabled:   false,
		HandshakeTimeout:   handshakeTimeout,
	})
	s := &sniffer{
		newReader: func(c net.Conn) *bufio.Reader { return bufio.NewReaderSize(c, readBuf) },
		onWS: func(c net.Conn, br *bufio.Reader) {
			r, err := http.ReadRequest(br)
			if err != nil {
				_ = c.Close()
				return
			}
			sock, err := up.UpgradeFromConn(c, br, r)
			if err != nil {
				return // UpgradeFromConn has answered 400 and closed
			}
			_ = c.SetReadDeadline(time.Time{})
			cfg.spawn(sock.ReadLoop) // calls OnOpen, OnMessage..., OnClose
		},
		onTCP: closeConn,
	}
	return s.serve(ln)
}
