package e2e

// A minimal Pomelo client for the tests, built on the protocol package over
// raw TCP or gobwas/ws: Conn reads synchronously (for clients that must
// control exactly when they read), Client adds a reader goroutine, request
// ids and heartbeats.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/shaddock/shaddock/protocol"
)

// Conn is a client connection speaking the Pomelo protocol.
type Conn struct {
	nc   net.Conn
	r    io.Reader // buffered reads from nc
	ws   bool
	wmu  sync.Mutex
	dec  protocol.Decoder
	pend []protocol.Package // decoded, not yet returned by ReadPackage
	rbuf []byte             // TCP read buffer

	Dict      *protocol.Dictionary // from the handshake
	Heartbeat time.Duration        // from the handshake
}

// DialOptions tune a connection; the zero value is a normal client.
type DialOptions struct {
	// RecvBuf, if positive, sets SO_RCVBUF before connecting, so the
	// advertised TCP window is small from the first byte.
	RecvBuf int
}

// Dial connects to addr over "tcp" or "ws".
func Dial(ctx context.Context, addr, transport string, opt DialOptions) (*Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if opt.RecvBuf > 0 {
		d.Control = func(network, address string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, opt.RecvBuf)
			})
			return errors.Join(err, serr)
		}
	}
	switch transport {
	case "tcp":
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return &Conn{nc: nc, r: bufio.NewReaderSize(nc, 32<<10)}, nil
	case "ws":
		wd := ws.Dialer{NetDial: d.DialContext, Timeout: 10 * time.Second}
		nc, br, _, err := wd.Dial(ctx, "ws://"+addr+"/")
		if err != nil {
			return nil, err
		}
		c := &Conn{nc: nc, ws: true}
		if br != nil { // bytes the server sent right after the upgrade
			c.r = io.MultiReader(br, bufio.NewReaderSize(nc, 32<<10))
		} else {
			c.r = bufio.NewReaderSize(nc, 32<<10)
		}
		return c, nil
	}
	return nil, fmt.Errorf("unknown transport %q", transport)
}

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.nc }

// LocalAddr is the client's address, which the server logs as remote=.
func (c *Conn) LocalAddr() string { return c.nc.LocalAddr().String() }

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// WriteRaw writes b as it is: one WebSocket frame, or bytes on TCP.
func (c *Conn) WriteRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if c.ws {
		return wsutil.WriteClientBinary(c.nc, b)
	}
	_, err := c.nc.Write(b)
	return err
}

// WritePackage writes one package.
func (c *Conn) WritePackage(t protocol.PackageType, body []byte) error {
	pkg, err := protocol.EncodePackage(t, body)
	if err != nil {
		return err
	}
	return c.WriteRaw(pkg)
}

// WriteMessage writes a data package; its route is compressed when the
// handshake's dictionary has it.
func (c *Conn) WriteMessage(m *protocol.Message) error {
	pkg, err := protocol.EncodeDataPackage(m, c.Dict)
	if err != nil {
		return err
	}
	return c.WriteRaw(pkg)
}

// ReadPackage returns the next package; its body is the caller's.
func (c *Conn) ReadPackage() (protocol.Package, error) {
	for len(c.pend) == 0 {
		var chunk []byte
		if c.ws {
			rw := struct {
				io.Reader
				io.Writer
			}{c.r, lockedWriter{c}}
			p, err := wsutil.ReadServerBinary(rw)
			if err != nil {
				return protocol.Package{}, err
			}
			chunk = p
		} else {
			if c.rbuf == nil {
				c.rbuf = make([]byte, 16<<10)
			}
			n, err := c.r.Read(c.rbuf)
			if n == 0 && err != nil {
				return protocol.Package{}, err
			}
			chunk = c.rbuf[:n]
		}
		err := c.dec.Feed(chunk, func(p protocol.Package) error {
			c.pend = append(c.pend, protocol.Package{Type: p.Type, Body: bytes.Clone(p.Body)})
			return nil
		})
		if err != nil {
			return protocol.Package{}, err
		}
	}
	p := c.pend[0]
	c.pend = c.pend[1:]
	return p, nil
}

// lockedWriter serialises the control frames wsutil may answer with
// (pong, close) with the client's own writes.
type lockedWriter struct{ c *Conn }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.c.wmu.Lock()
	defer w.c.wmu.Unlock()
	return w.c.nc.Write(p)
}

// handshakeAnswer is the part of the server's handshake the tests read.
type handshakeAnswer struct {
	Code int `json:"code"`
	Sys  struct {
		Heartbeat int               `json:"heartbeat"`
		Dict      map[string]uint16 `json:"dict"`
	} `json:"sys"`
}

// Handshake sends the client handshake, reads the answer, keeps its
// dictionary and heartbeat, and sends the handshake-ack. It reads
// synchronously, so call it before Start.
func (c *Conn) Handshake() error {
	c.nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	defer c.nc.SetReadDeadline(time.Time{})
	if err := c.WritePackage(protocol.Handshake, []byte(`{"sys":{"type":"go-e2e","version":"0.0.1"},"user":{}}`)); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	p, err := c.ReadPackage()
	if err != nil {
		return fmt.Errorf("handshake: read answer: %w", err)
	}
	if p.Type != protocol.Handshake {
		return fmt.Errorf("handshake: got a %s package", p.Type)
	}
	var a handshakeAnswer
	if err := json.Unmarshal(p.Body, &a); err != nil {
		return fmt.Errorf("handshake: answer %q: %w", p.Body, err)
	}
	if a.Code != protocol.CodeOK {
		return fmt.Errorf("handshake: answer code %d: %s", a.Code, p.Body)
	}
	if c.Dict, err = dictFromHandshake(a.Sys.Dict); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	c.Heartbeat = time.Duration(a.Sys.Heartbeat) * time.Second
	return c.WritePackage(protocol.HandshakeAck, nil)
}

// dictFromHandshake rebuilds a Dictionary from the {route: code} map, whose
// codes must be 1..n.
func dictFromHandshake(m map[string]uint16) (*protocol.Dictionary, error) {
	routes := make([]string, 0, len(m))
	for r := range m {
		routes = append(routes, r)
	}
	sort.Slice(routes, func(i, j int) bool { return m[routes[i]] < m[routes[j]] })
	d, err := protocol.NewDictionary(routes)
	if err != nil {
		return nil, err
	}
	for r, code := range m {
		if got, _ := d.Code(r); got != code {
			return nil, fmt.Errorf("dictionary codes are not 1..%d: %v", len(m), m)
		}
	}
	return d, nil
}

// RequestSync sends a request and reads until its response arrives,
// dropping anything else. Use it before Start, or on a Conn that is never
// started.
func (c *Conn) RequestSync(route string, body []byte, id uint64) ([]byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	defer c.nc.SetReadDeadline(time.Time{})
	if err := c.WriteMessage(&protocol.Message{Type: protocol.Request, ID: id, Route: route, Body: body}); err != nil {
		return nil, err
	}
	for {
		p, err := c.ReadPackage()
		if err != nil {
			return nil, fmt.Errorf("request %s: %w", route, err)
		}
		if p.Type != protocol.Data {
			continue
		}
		m, err := protocol.DecodeMessage(p.Body, c.Dict)
		if err != nil {
			return nil, fmt.Errorf("request %s: %w", route, err)
		}
		if m.Type == protocol.Response && m.ID == id {
			return m.Body, nil
		}
	}
}

// Client is a Conn with a reader goroutine: requests wait for their
// response by id, pushes go to a callback, and heartbeats are sent at the
// handshake's interval.
type Client struct {
	*Conn
	onPush func(protocol.Message)

	nextID  atomic.Uint64
	mu      sync.Mutex
	waiting map[uint64]chan []byte

	done    chan struct{} // reader ended
	readErr error         // set before done is closed
	stop    chan struct{}
	once    sync.Once
}

// Start begins reading. onPush, if set, runs on the reader goroutine for
// every push, with a body the callback may keep.
func (c *Conn) Start(onPush func(protocol.Message)) *Client {
	cl := &Client{Conn: c, onPush: onPush, waiting: make(map[uint64]chan []byte),
		done: make(chan struct{}), stop: make(chan struct{})}
	cl.nextID.Store(100)
	go cl.read()
	if c.Heartbeat > 0 {
		go cl.beat()
	}
	return cl
}

func (cl *Client) read() {
	defer close(cl.done)
	for {
		p, err := cl.ReadPackage()
		if err != nil {
			cl.readErr = err
			return
		}
		switch p.Type {
		case protocol.Data:
			m, err := protocol.DecodeMessage(p.Body, cl.Dict)
			if err != nil {
				cl.readErr = err
				cl.Conn.Close()
				return
			}
			switch m.Type {
			case protocol.Response:
				cl.mu.Lock()
				ch := cl.waiting[m.ID]
				delete(cl.waiting, m.ID)
				cl.mu.Unlock()
				if ch != nil {
					ch <- m.Body
				}
			case protocol.Push:
				if cl.onPush != nil {
					cl.onPush(m)
				}
			}
		}
	}
}

func (cl *Client) beat() {
	t := time.NewTicker(cl.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			cl.WritePackage(protocol.Heartbeat, nil)
		case <-cl.stop:
			return
		case <-cl.done:
			return
		}
	}
}

// Request sends a request and waits for its response.
func (cl *Client) Request(ctx context.Context, route string, body []byte) ([]byte, error) {
	id := cl.nextID.Add(1)
	ch := make(chan []byte, 1)
	cl.mu.Lock()
	cl.waiting[id] = ch
	cl.mu.Unlock()
	defer func() {
		cl.mu.Lock()
		delete(cl.waiting, id)
		cl.mu.Unlock()
	}()
	if err := cl.WriteMessage(&protocol.Message{Type: protocol.Request, ID: id, Route: route, Body: body}); err != nil {
		return nil, fmt.Errorf("request %s: %w", route, err)
	}
	select {
	case b := <-ch:
		return b, nil
	case <-cl.done:
		return nil, fmt.Errorf("request %s: connection ended: %v", route, cl.readErr)
	case <-ctx.Done():
		return nil, fmt.Errorf("request %s: %w", route, ctx.Err())
	}
}

// Notify sends a notify.
func (cl *Client) Notify(route string, body []byte) error {
	return cl.WriteMessage(&protocol.Message{Type: protocol.Notify, Route: route, Body: body})
}

// Done is closed when the reader ends; Err then says why.
func (cl *Client) Done() <-chan struct{} { return cl.done }

// Err is why the reader ended; valid once Done is closed.
func (cl *Client) Err() error { return cl.readErr }

// Close closes the connection and waits for the reader.
func (cl *Client) Close() {
	cl.once.Do(func() { close(cl.stop) })
	cl.Conn.Close()
	<-cl.done
}
