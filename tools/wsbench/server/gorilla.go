package main

import (
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"
)

// runGorilla serves the echo with gorilla/websocket in its documented
// low-memory setup: small explicit buffers (so the 4 KiB net/http buffers are
// not adopted) and a WriteBufferPool so the write buffer is only held while a
// message is being written. One goroutine per connection, blocking reads.
func runGorilla(ln net.Listener, cfg config) error {
	up := &websocket.Upgrader{
		ReadBufferSize:  cfg.readBuf,
		WriteBufferSize: cfg.writeBuf,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     func(*http.Request) bool { return true },
	}
	if cfg.readBuf == 0 { // library defaults: adopt net/http's 4 KiB buffers
		up = &websocket.Upgrader{CheckOrigin: up.CheckOrigin}
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c.SetReadLimit(cfg.maxPayload)
		// With respawn the handler returns, as in gorilla's chat example,
		// which also lets net/http drop its per-connection state (the
		// request, response and 4 KiB reader) that the handler's stack
		// would otherwise keep alive.
		cfg.spawn(func() { gorillaLoop(c, cfg.stackWork) })
	})
	return serveHTTPSniffed(ln, h)
}

func gorillaLoop(c *websocket.Conn, stackWork int) {
	defer c.Close()
	sessions.Add(1)
	defer sessions.Add(-1)
	for {
		mt, rd, err := c.NextReader()
		if err != nil {
			return
		}
		work(stackWork)
		wr, err := c.NextWriter(mt)
		if err != nil {
			return
		}
		// messageWriter implements io.ReaderFrom: the payload is read
		// straight into the pooled write buffer.
		if _, err := io.Copy(wr, rd); err != nil {
			return
		}
		if err := wr.Close(); err != nil {
			return
		}
	}
}
