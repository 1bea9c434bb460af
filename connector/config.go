package connector

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/pomelopb"
	"github.com/shaddock/shaddock/protocol"
)

// BindPolicy decides what binding a uid that another session holds does.
type BindPolicy int

const (
	// BindReject fails the new bind with handler.ErrUIDBound.
	BindReject BindPolicy = iota
	// BindKickOld kicks the old session and binds the new one.
	BindKickOld
)

// Config configures a Server. Zero fields take the defaults noted.
type Config struct {
	ID   string // server id, e.g. "connector-server-1"
	Type string // server type, e.g. "connector"
	// Epoch names this instance of the server (see rpc.Member.Epoch);
	// sessions report it with FrontendEpoch. 0 when none was given.
	Epoch uint64

	// Handler serves every request and notify of a session. Required.
	Handler handler.Func
	// AsyncHandler, if set, is offered each request and notify before
	// Handler. Returning true, it has taken the message and calls done
	// exactly once, from any goroutine (possibly before it returns), with
	// what Handler would have returned; the session's next message waits
	// for done, as it waits for Handler. Returning false (without calling
	// done) leaves the message to Handler. It must not block, nor must
	// done's caller expect done to: done answers the client and goes on
	// with the session's queue. (The app forwards messages to backends
	// here: no goroutine then waits for each reply.)
	AsyncHandler handler.AsyncFunc
	// Dictionary of route codes sent in the handshake and used to compress
	// push routes (Pomelo's useDict). Nil for none.
	Dictionary *protocol.Dictionary
	// Protos turns on protobuf bodies, as Pomelo's useProtobuf does: the
	// handshake offers them (sys.protos, unless the client holds their
	// version, and useProto), a request or notify on a route with a client
	// proto is decoded from protobuf into the JSON its handler reads, and a
	// response or push on a route with a server proto is encoded from JSON
	// into protobuf. Nil for JSON bodies only.
	Protos *pomelopb.Protos
	// TLS, if set, makes the client port TLS: raw TCP over TLS and wss://
	// for WebSocket, on the one port (Pomelo's hybrid connector with ssl).
	TLS *tls.Config

	Heartbeat        time.Duration // interval announced to clients, whole seconds (rounded up); default 30 s, negative announces none (as Pomelo without a heartbeat option)
	HeartbeatTimeout time.Duration // silence that closes a session; default 2× Heartbeat (none without heartbeats)
	HandshakeTimeout time.Duration // from accept to handshake-ack; default 10 s
	MaxPackageSize   int           // largest package body accepted; default 64 KiB
	WriteQueueBytes  int           // queued bytes beyond which a client is deemed not reading; default 256 KiB
	WriteTimeout     time.Duration // one write to a client; default 10 s
	// SocketSendBuffer sets SO_SNDBUF on client connections so that a client
	// that stops reading fills the write queue (and is closed) after this
	// much, not after the kernel's auto-tuned megabytes; default 128 KiB,
	// negative leaves the kernel default.
	SocketSendBuffer int
	RequestTimeout   time.Duration // deadline of a handler's context; default 10 s
	MaxPending       int           // messages queued per session before reading pauses; default 32
	// RequestRate limits requests and notifies per second per session, with
	// bursts up to RequestBurst; over it a request is answered 429 and a
	// notify is dropped. Default 1000/s, burst = rate; negative disables.
	RequestRate  float64
	RequestBurst int
	// MaxSessions caps concurrent connections; 0 means no cap.
	MaxSessions int
	BindPolicy  BindPolicy
	// ShutdownReason is the kick reason clients get on Shutdown.
	ShutdownReason string

	// CheckClient, if set, vets the client type and version from the
	// handshake; false answers 501 (old client) and closes.
	CheckClient func(clientType, version string) bool
	// UserHandshake, if set, sees the "user" part of the handshake and
	// returns the "user" part of the answer; an error answers 500 and closes.
	UserHandshake func(ctx context.Context, s *Session, user json.RawMessage) (any, error)
	// OnSessionClosed runs after a session's close hooks, on every session.
	OnSessionClosed func(s *Session)
	// OnRefused, if set, learns of each request the connector answers
	// itself, without calling Handler: 429 over the request rate, 503
	// while shutting down, 400 for a body its client proto cannot decode.
	// With a wrapped Handler it lets metrics count every request. It runs
	// on the session's reader and must not block.
	OnRefused func(route string, code int)

	Logger *slog.Logger

	// idleAfter is how long a working session is silent before its reader
	// parks with the idle poller (idle_linux.go); tests shorten it.
	idleAfter time.Duration
	// onRead, if set, runs before each read (recvfrom(2)) of readLoop: tests count
	// the system calls a burst costs.
	onRead func()
}

// defaultIdleAfter: long enough that a session in a conversation keeps its
// reader, short against a heartbeat interval.
const defaultIdleAfter = time.Second

func (c *Config) setDefaults() error {
	if c.Handler == nil {
		return errors.New("connector: Config.Handler is required")
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 30 * time.Second
	}
	if c.Heartbeat < 0 {
		c.Heartbeat = 0
	}
	// The handshake announces whole seconds; round up so the interval the
	// client hears is never shorter than the one enforced.
	if r := c.Heartbeat % time.Second; r != 0 {
		c.Heartbeat += time.Second - r
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = 2 * c.Heartbeat
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.MaxPackageSize == 0 {
		c.MaxPackageSize = protocol.DefaultMaxBodyLen
	}
	if c.MaxPackageSize > protocol.MaxBodyLen {
		c.MaxPackageSize = protocol.MaxBodyLen
	}
	if c.WriteQueueBytes == 0 {
		c.WriteQueueBytes = 256 << 10
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.SocketSendBuffer == 0 {
		c.SocketSendBuffer = 128 << 10
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.MaxPending == 0 {
		c.MaxPending = 32
	}
	if c.RequestRate == 0 {
		c.RequestRate = 1000
	}
	if c.RequestBurst == 0 {
		c.RequestBurst = int(c.RequestRate)
	}
	if c.ShutdownReason == "" {
		c.ShutdownReason = "server shutting down"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.idleAfter == 0 {
		c.idleAfter = defaultIdleAfter
	}
	return nil
}
