package main

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

const handshakeTimeout = 10 * time.Second

// readerPool holds the bufio.Readers used for sniffing and handshakes and, for
// the zero-buffer implementations, for reading frames that have arrived.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

func getReader(c net.Conn) *bufio.Reader {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(c)
	return br
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readerPool.Put(br)
}

// sniffer is the shared front door: it accepts, peeks the first four bytes
// and hands the connection to the WebSocket or the raw TCP handler together
// with the reader that holds the peeked bytes.
type sniffer struct {
	// newReader returns the reader to peek through; nil means a pooled one.
	newReader func(net.Conn) *bufio.Reader
	onWS      func(net.Conn, *bufio.Reader)
	onTCP     func(net.Conn, *bufio.Reader)
}

func (s *sniffer) serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return err
		}
		go s.handle(c)
	}
}

func (s *sniffer) handle(c net.Conn) {
	var br *bufio.Reader
	if s.newReader != nil {
		br = s.newReader(c)
	} else {
		br = getReader(c)
	}
	_ = c.SetReadDeadline(time.Now().Add(handshakeTimeout))
	p, err := br.Peek(4)
	if err != nil {
		_ = c.Close()
		return
	}
	if string(p) == "GET " {
		s.onWS(c, br)
		return
	}
	if s.onTCP == nil {
		_ = c.Close()
		return
	}
	s.onTCP(c, br)
}

func closeConn(c net.Conn, _ *bufio.Reader) { _ = c.Close() }

// prefixConn replays the bytes buffered by the sniffer before reading from
// the socket again; the pooled reader is released as soon as it is drained.
type prefixConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			n, _ := c.br.Read(p) // only returns buffered bytes
			if c.br.Buffered() == 0 {
				putReader(c.br)
				c.br = nil
			}
			return n, nil
		}
		putReader(c.br)
		c.br = nil
	}
	return c.Conn.Read(p)
}

// chanListener feeds sniffed connections to a net/http Server.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn, 256), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// serveHTTPSniffed serves h (an upgrading handler) behind the sniffer: a
// WebSocket upgrade request is passed to net/http as a prefixConn.
func serveHTTPSniffed(ln net.Listener, h http.Handler) error {
	cl := newChanListener(ln.Addr())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: handshakeTimeout}
	go func() { _ = srv.Serve(cl) }()
	s := &sniffer{
		onWS: func(c net.Conn, br *bufio.Reader) {
			_ = c.SetReadDeadline(time.Time{}) // net/http applies its own
			cl.ch <- &prefixConn{Conn: c, br: br}
		},
		onTCP: closeConn,
	}
	return s.serve(ln)
}
