package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/gobwas/ws"
	"github.com/shaddock/shaddock/protocol"
)

// gunzipLimit bounds an inflated gzip body.
const gunzipLimit = 1 << 20

// readLoop is the connection's only reader: it decodes packages in place from
// one buffer and dispatches them, so no message costs a goroutine.
func (c *Client) readLoop() {
	var src io.Reader = c.conn
	if c.ws {
		src = &wsReader{br: c.rd, control: c.onControl}
	}
	buf := make([]byte, readBufferSize)
	onPackage := c.onPackage
	var deadlineSet time.Time
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if c.timeout > 0 {
				// Refresh the silence deadline at most every eighth of the
				// timeout: SetReadDeadline per read would cost more than the
				// read on a busy connection. Adding the same eighth keeps the
				// limit at least 2× the interval after the last byte.
				if now := time.Now(); now.Sub(deadlineSet) > c.timeout/8 {
					deadlineSet = now
					_ = c.conn.SetReadDeadline(now.Add(c.timeout + c.timeout/8))
				}
			}
			if ferr := c.dec.Feed(buf[:n], onPackage); ferr != nil {
				c.end(ferr)
				return
			}
		}
		if err != nil {
			c.end(c.readError(err))
			return
		}
	}
}

// readError names why the read side ended.
func (c *Client) readError(err error) error {
	switch {
	case err == io.EOF:
		return fmt.Errorf("client: connection closed by the server: %w", io.EOF)
	case errors.Is(err, os.ErrDeadlineExceeded) && c.timeout > 0:
		return fmt.Errorf("%w: nothing from the server for %v", ErrHeartbeatTimeout, c.timeout)
	case errors.Is(err, net.ErrClosed):
		return ErrClosed // closed by end: its first error is already recorded
	}
	var perr *net.OpError
	if errors.As(err, &perr) {
		return fmt.Errorf("client: read: %w", err)
	}
	return err // already descriptive (websocket framing)
}

// onControl answers WebSocket control frames for the reader.
func (c *Client) onControl(op ws.OpCode, payload []byte) error {
	switch op {
	case ws.OpPing:
		c.enqueueControl(ws.OpPong, payload)
	case ws.OpClose:
		// Echo the close (RFC 6455 §5.5.1) directly: the connection ends now,
		// so the writer goroutine would not get to send it.
		frame := appendFrame(nil, ws.OpClose, payload[:min(len(payload), 2)])
		_ = c.conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = c.conn.Write(frame)
		return closeError(payload)
	}
	return nil
}

// onPackage handles one decoded package on the reader goroutine.
func (c *Client) onPackage(p protocol.Package) error {
	handshaken := c.hs.Code != 0
	switch p.Type {
	case protocol.Handshake:
		if handshaken {
			c.log.Debug("second handshake answer ignored")
			return nil
		}
		return c.onHandshake(p.Body)
	case protocol.Heartbeat:
		// The answer to ours (or the one Pomelo sends after the ack): the
		// next heartbeat goes one interval from now.
		c.mu.Lock()
		if c.hbTimer != nil {
			c.hbTimer.Reset(c.hbInterval)
		}
		c.mu.Unlock()
		return nil
	case protocol.Kick:
		reason := kickReason(p.Body)
		if c.opts.OnKick != nil {
			c.opts.OnKick(reason)
		}
		return &KickedError{Reason: reason}
	case protocol.Data:
		if !handshaken {
			return errors.New("client: data package before the handshake answer")
		}
		return c.onMessage(p.Body)
	}
	c.log.Debug("unexpected package ignored", "type", p.Type)
	return nil
}

// onMessage dispatches a response to its waiter or a push to OnPush. A
// message the client cannot decode ends the connection: the server is
// confused and guessing would hide it.
func (c *Client) onMessage(b []byte) error {
	m, err := protocol.DecodeMessage(b, c.dict)
	if err != nil {
		return err
	}
	switch m.Type {
	case protocol.Response:
		c.mu.Lock()
		cl := c.pending[m.ID]
		delete(c.pending, m.ID)
		c.mu.Unlock()
		if cl == nil {
			c.log.Debug("response to an unknown request ignored", "id", m.ID)
			return nil
		}
		if m.Gzip {
			cl.body, cl.err = protocol.Gunzip(m.Body, gunzipLimit)
		} else {
			cl.body = append([]byte(nil), m.Body...) // m.Body aliases the read buffer
		}
		cl.ch <- struct{}{}
	case protocol.Push:
		body := m.Body
		if m.Gzip {
			if body, err = protocol.Gunzip(body, gunzipLimit); err != nil {
				return fmt.Errorf("client: push %s: %w", m.Route, err)
			}
		}
		if c.opts.OnPush != nil {
			select {
			case <-c.done:
				return nil // ended (Close): the rest of the read buffer is not delivered
			default:
			}
			c.opts.OnPush(m.Route, body)
		} else {
			c.log.Debug("push dropped: no OnPush", "route", m.Route)
		}
	default:
		c.log.Debug("client-side message from the server ignored", "type", m.Type, "route", m.Route)
	}
	return nil
}

func kickReason(body []byte) string {
	var k protocol.KickBody
	if json.Unmarshal(body, &k) == nil {
		return k.Reason
	}
	return string(body)
}

// handshakeAnswer is the server's answer as it travels. protocol's
// HandshakeServerSys cannot be decoded into (its *Dictionary has no
// UnmarshalJSON), so the dictionary is read as the plain map it is.
type handshakeAnswer struct {
	Code int `json:"code"`
	Sys  *struct {
		Heartbeat   int               `json:"heartbeat"`
		Dict        map[string]uint16 `json:"dict"`
		DictVersion string            `json:"dictVersion"`
		UseDict     bool              `json:"useDict"`
		Protos      json.RawMessage   `json:"protos"`
	} `json:"sys"`
	User json.RawMessage `json:"user"`
}

// onHandshake checks the server's answer, installs the dictionary and the
// heartbeat, sends the ack and lets Dial return.
func (c *Client) onHandshake(body []byte) error {
	var a handshakeAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return fmt.Errorf("client: handshake answer: %w", err)
	}
	if a.Code != protocol.CodeOK {
		return &HandshakeError{Code: a.Code}
	}
	sys := &protocol.HandshakeServerSys{}
	if a.Sys != nil {
		sys.Heartbeat, sys.DictVersion, sys.UseDict, sys.Protos = a.Sys.Heartbeat, a.Sys.DictVersion, a.Sys.UseDict, a.Sys.Protos
		switch {
		case len(a.Sys.Dict) > 0:
			d, err := protocol.DictionaryFromCodes(a.Sys.Dict)
			if err != nil {
				return fmt.Errorf("client: handshake answer: %w", err)
			}
			sys.Dict = d
		case c.opts.Dict != nil && (a.Sys.DictVersion == c.opts.Dict.Version() || a.Sys.UseDict && a.Sys.DictVersion == ""):
			// The server recognised our cached dictionary: shaddock repeats
			// the version, Pomelo sends only useDict.
			sys.Dict = c.opts.Dict
		case a.Sys.UseDict || a.Sys.DictVersion != "":
			c.log.Warn("server uses a dictionary it did not send; compressed routes will fail", "dictVersion", a.Sys.DictVersion)
		}
		sys.RouteToCode = sys.Dict
	}
	c.dict = sys.Dict
	c.hs = protocol.HandshakeResponse{Code: a.Code, Sys: sys, User: a.User}

	c.enqueuePackage(protocol.HandshakeAck, nil)
	if sys.Heartbeat > 0 && !c.opts.NoHeartbeat {
		interval := time.Duration(sys.Heartbeat) * time.Second
		c.timeout = 2 * interval
		_ = c.conn.SetReadDeadline(time.Now().Add(c.timeout + c.timeout/8))
		c.mu.Lock()
		if c.pending != nil { // not ended
			c.hbInterval = interval
			c.hbTimer = time.AfterFunc(interval, c.heartbeat)
		}
		c.mu.Unlock()
	}
	close(c.hsDone)
	return nil
}

// heartbeat runs on the timer: send one, and plan the next in case the
// server never answers (an answer re-plans it from the answer's arrival).
func (c *Client) heartbeat() {
	c.enqueuePackage(protocol.Heartbeat, nil)
	c.mu.Lock()
	if c.pending != nil {
		c.hbTimer.Reset(c.hbInterval)
	}
	c.mu.Unlock()
}
