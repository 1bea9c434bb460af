package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/coder/websocket"
)

var coderBufPool = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// runCoder serves the echo with coder/websocket (formerly nhooyr.io/websocket)
// through its standard http.Handler Accept and a read loop. The library has
// no buffer-size options: it keeps the hijacked net/http bufio reader and
// writer (4 KiB each) for the life of the connection.
func runCoder(ln net.Listener, cfg config) error {
	opts := &websocket.AcceptOptions{
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, opts)
		if err != nil {
			return
		}
		c.SetReadLimit(cfg.maxPayload)
		cfg.spawn(func() { coderLoop(c, cfg.stackWork) })
	})
	return serveHTTPSniffed(ln, h)
}

func coderLoop(c *websocket.Conn, stackWork int) {
	defer c.CloseNow()
	sessions.Add(1)
	defer sessions.Add(-1)
	ctx := context.Background()
	for {
		typ, rd, err := c.Reader(ctx)
		if err != nil {
			return
		}
		work(stackWork)
		bp := coderBufPool.Get().(*[]byte)
		msg, err := readAllInto(rd, *bp)
		if err == nil {
			// c.Write sends the message as one frame; Writer+Copy
			// would send a frame per Write plus an empty final one.
			err = c.Write(ctx, typ, msg)
		}
		*bp = msg[:0]
		coderBufPool.Put(bp)
		if err != nil {
			return
		}
	}
}

// readAllInto reads r to EOF into buf, growing it if needed.
func readAllInto(r io.Reader, buf []byte) ([]byte, error) {
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
