package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/shaddock/shaddock/protocol"
)

// RawConn is a Pomelo connection with no protocol logic, for tests that send
// malformed or ill-timed input and watch how a server reacts. Nothing is sent
// unless asked: no handshake, no heartbeat. On WebSocket it still masks its
// frames and answers pings, since a server is entitled to require both.
//
// Writes may be concurrent with each other and with ReadPackage; ReadPackage
// itself must not be called concurrently.
type RawConn struct {
	conn net.Conn
	ws   bool
	src  io.Reader
	wmu  sync.Mutex

	dec   protocol.Decoder
	queue []protocol.Package // decoded, not yet returned (bodies copied)
	buf   []byte
	err   error // sticky read error
}

// DialRaw connects to addr with transport ("tcp", "ws", or "" for TCP unless
// addr is a ws:// URL) and returns before any Pomelo byte is exchanged.
func DialRaw(ctx context.Context, addr, transport string) (*RawConn, error) {
	conn, br, isWS, err := dialTransport(ctx, addr, transport, nil)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	r := &RawConn{conn: conn, ws: isWS, src: conn, buf: make([]byte, readBufferSize)}
	r.dec.MaxBody = protocol.MaxBodyLen
	if isWS {
		r.src = &wsReader{br: br, control: r.onControl}
	}
	return r, nil
}

// NetConn is the underlying connection, for socket-level tricks (half
// close, raw WebSocket frames, deadlines).
func (r *RawConn) NetConn() net.Conn { return r.conn }

// WritePackage writes one package of type t, which need not be a valid type.
func (r *RawConn) WritePackage(t protocol.PackageType, body []byte) error {
	if len(body) > protocol.MaxBodyLen {
		return fmt.Errorf("%w: body of %d bytes", protocol.ErrPackageTooLarge, len(body))
	}
	pkg := make([]byte, protocol.HeaderLen, protocol.HeaderLen+len(body))
	protocol.PutHeader(pkg, t, len(body))
	return r.WriteBytes(append(pkg, body...))
}

// WriteBytes writes b as is on TCP, as one binary frame on WebSocket.
func (r *RawConn) WriteBytes(b []byte) error {
	if r.ws {
		b = appendFrame(nil, ws.OpBinary, b)
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	_, err := r.conn.Write(b)
	return err
}

// Handshake performs a well-formed handshake (hello with user, answer, ack)
// so a test can get straight to the input it cares about. A refusal is a
// *HandshakeError.
func (r *RawConn) Handshake(ctx context.Context, user any) (protocol.HandshakeResponse, error) {
	var resp protocol.HandshakeResponse
	hello, err := handshakeRequest(&Options{HandshakeUser: user}, r.ws)
	if err != nil {
		return resp, err
	}
	if err := r.WritePackage(protocol.Handshake, hello); err != nil {
		return resp, err
	}
	p, err := r.ReadPackage(ctx)
	if err != nil {
		return resp, err
	}
	if p.Type != protocol.Handshake {
		return resp, fmt.Errorf("client: got a %s package instead of the handshake answer", p.Type)
	}
	var a handshakeAnswer
	if err := json.Unmarshal(p.Body, &a); err != nil {
		return resp, fmt.Errorf("client: handshake answer: %w", err)
	}
	resp.Code, resp.User = a.Code, a.User
	if a.Code != protocol.CodeOK {
		return resp, &HandshakeError{Code: a.Code}
	}
	resp.Sys = &protocol.HandshakeServerSys{}
	if a.Sys != nil {
		resp.Sys.Heartbeat, resp.Sys.DictVersion, resp.Sys.UseDict, resp.Sys.Protos = a.Sys.Heartbeat, a.Sys.DictVersion, a.Sys.UseDict, a.Sys.Protos
		if len(a.Sys.Dict) > 0 {
			if resp.Sys.Dict, err = protocol.DictionaryFromCodes(a.Sys.Dict); err != nil {
				return resp, err
			}
			resp.Sys.RouteToCode = resp.Sys.Dict
		}
	}
	return resp, r.WritePackage(protocol.HandshakeAck, nil)
}

// ReadPackage returns the next package from the server; its body is the
// caller's. An orderly close by the server is an error wrapping io.EOF.
func (r *RawConn) ReadPackage(ctx context.Context) (protocol.Package, error) {
	for len(r.queue) == 0 {
		if r.err != nil {
			return protocol.Package{}, r.err
		}
		if err := r.fill(ctx); err != nil {
			return protocol.Package{}, err
		}
	}
	p := r.queue[0]
	r.queue = r.queue[1:]
	return p, nil
}

// fill does one read, bounded by ctx, and decodes what it got.
func (r *RawConn) fill(ctx context.Context) error {
	dl, _ := ctx.Deadline() // zero: no deadline (and clears an earlier poisoned one)
	_ = r.conn.SetReadDeadline(dl)
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = r.conn.SetReadDeadline(time.Unix(1, 0))
		close(fired)
	})
	n, err := r.src.Read(r.buf)
	if !stop() {
		<-fired // or it could poison the next call's deadline
	}
	if n > 0 {
		if derr := r.dec.Feed(r.buf[:n], func(p protocol.Package) error {
			r.queue = append(r.queue, protocol.Package{Type: p.Type, Body: append([]byte(nil), p.Body...)})
			return nil
		}); derr != nil {
			r.err = derr
		}
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Only ctx sets deadlines here (its own, or an immediate one when
			// cancelled); the conn's timer may beat ctx's by a hair. A
			// timeout is transient: the connection stays usable.
			<-ctx.Done()
			return ctx.Err()
		}
		if err == io.EOF {
			err = fmt.Errorf("client: connection closed by the server: %w", io.EOF)
		}
		r.err = err
	}
	return nil
}

// onControl answers pings and echoes a close frame.
func (r *RawConn) onControl(op ws.OpCode, payload []byte) error {
	switch op {
	case ws.OpPing:
		r.wmu.Lock()
		_, err := r.conn.Write(appendFrame(nil, ws.OpPong, payload))
		r.wmu.Unlock()
		return err
	case ws.OpClose:
		r.wmu.Lock()
		_, _ = r.conn.Write(appendFrame(nil, ws.OpClose, payload[:min(len(payload), 2)]))
		r.wmu.Unlock()
		return closeError(payload)
	}
	return nil
}

// Close closes the connection.
func (r *RawConn) Close() error { return r.conn.Close() }
