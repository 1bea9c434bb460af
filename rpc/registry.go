package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/shaddock/shaddock/internal/routines"
	"github.com/shaddock/shaddock/proto/masterpb"
)

// RegistryConfig configures a Registry client.
type RegistryConfig struct {
	Master     string // master's control address, host:port
	Secret     string
	Self       Member // State is ignored; the registry sends the current one
	Membership *Membership
	// Connections reports the number of client sessions, for `master list`.
	Connections func() int
	// OnStop runs once when the master asks the server to stop.
	OnStop func(reason string, timeout time.Duration)
	// OnDrain runs when the master asks the server to drain, before the
	// registry reports DRAINING (it does so itself; nil is fine).
	OnDrain func(reason string)
	// Heartbeat interval; default 1 s.
	Heartbeat time.Duration
	Logger    *slog.Logger
}

// Registry keeps a server registered with the master: it sends the server's
// state and heartbeats and applies the membership the master sends. When
// the master is unreachable it keeps the last membership and retries, so the
// cluster serves on without its control plane.
type Registry struct {
	cfg      RegistryConfig
	log      *slog.Logger
	mu       sync.Mutex
	state    State
	kick     chan struct{} // wakes the heartbeat loop after a state change
	synced   chan struct{} // closed at the first membership received
	once     sync.Once
	stopped  sync.Once
	routines routines.Group // OnStop's goroutine, waited for by Run
}

// NewRegistry returns a registry client; call Run.
func NewRegistry(cfg RegistryConfig) *Registry {
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Registry{cfg: cfg, log: cfg.Logger.With("master", cfg.Master),
		state: StateStarting, kick: make(chan struct{}, 1), synced: make(chan struct{})}
}

// SetState changes the state reported to the master and sends it at once.
// A server the master told to drain stays DRAINING until it stops.
func (r *Registry) SetState(s State) {
	r.mu.Lock()
	if !(r.state == StateDraining && s == StateRunning) {
		r.state = s
	}
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// drain reports DRAINING from now on (unless the server is already
// stopping), after the server's own drain hook.
func (r *Registry) drain(reason string) {
	if r.cfg.OnDrain != nil {
		r.cfg.OnDrain(reason)
	}
	r.mu.Lock()
	if r.state == StateStarting || r.state == StateRunning {
		r.state = StateDraining
	}
	r.mu.Unlock()
	r.log.Info("draining, as the master asked", "reason", reason)
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *Registry) currentState() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

// Synced is closed once the first membership has arrived.
func (r *Registry) Synced() <-chan struct{} { return r.synced }

// Run keeps the registration alive until ctx ends. It returns once
// everything it started has ended.
func (r *Registry) Run(ctx context.Context) error {
	defer func() { r.routines.Close(); r.routines.Wait() }()
	cc, err := grpc.NewClient(r.cfg.Master,
		grpc.WithTransportCredentials(insecure.NewCredentials()), WithSecret(r.cfg.Secret),
		// Heartbeats only flow to the master; keepalive pings notice a master
		// whose host vanished without resetting the connection.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
		// Back within a second of a restarted master (gRPC's default backoff
		// grows to two minutes): a new master publishes the membership only
		// once the running servers have re-registered, or 2 s after it
		// started listening.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 3 * time.Second,
		}))
	if err != nil {
		return fmt.Errorf("registry: dial master %s: %w", r.cfg.Master, err)
	}
	defer cc.Close()
	client := masterpb.NewRegistryClient(cc)
	backoff := 100 * time.Millisecond
	connected := true // so the first failure is logged
	for {
		start := time.Now()
		err := r.session(ctx, client)
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			r.log.Warn("master unreachable; serving with the last membership and retrying", "err", err)
			connected = false
		}
		if time.Since(start) > 5*time.Second {
			backoff = 100 * time.Millisecond // it was up for a while: retry soon
			connected = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// session runs one registration stream until it fails.
func (r *Registry) session(ctx context.Context, client masterpb.RegistryClient) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := client.Register(ctx)
	if err != nil {
		return err
	}
	self := r.cfg.Self
	self.State = r.currentState()
	hello := self.ToProto()
	if err := st.Send(&masterpb.ServerMessage{Msg: &masterpb.ServerMessage_Hello{Hello: &masterpb.Hello{Info: hello.Info, State: hello.State}}}); err != nil {
		return err
	}
	// The heartbeat sender lives as long as this session: cancelled and
	// waited for when it returns.
	sendErr := make(chan error, 1)
	var hb sync.WaitGroup
	hb.Go(func() { sendErr <- r.heartbeats(ctx, st) })
	defer func() { cancel(); hb.Wait() }()
	first := true
	for {
		msg, err := st.Recv()
		if err != nil {
			return err
		}
		if first {
			r.log.Info("registered with master")
			first = false
		}
		switch m := msg.Msg.(type) {
		case *masterpb.MasterMessage_Membership:
			members := make([]Member, 0, len(m.Membership.Members))
			for _, pm := range m.Membership.Members {
				members = append(members, MemberFromProto(pm))
			}
			r.cfg.Membership.Replace(members)
			r.once.Do(func() { close(r.synced) })
		case *masterpb.MasterMessage_Upsert:
			r.cfg.Membership.Upsert(MemberFromProto(m.Upsert))
		case *masterpb.MasterMessage_Removed:
			r.cfg.Membership.Remove(m.Removed)
		case *masterpb.MasterMessage_Command:
			if stop := m.Command.GetStop(); stop != nil && r.cfg.OnStop != nil {
				r.stopped.Do(func() {
					// Not on this goroutine: the stop it starts ends this
					// session (and Run, which waits for it).
					r.routines.Go(func() { r.cfg.OnStop(stop.Reason, time.Duration(stop.TimeoutMs)*time.Millisecond) })
				})
			}
			if drain := m.Command.GetDrain(); drain != nil {
				r.drain(drain.GetReason())
			}
		}
		select {
		case err := <-sendErr:
			if err != nil {
				return err
			}
		default:
		}
	}
}

func (r *Registry) heartbeats(ctx context.Context, st grpc.BidiStreamingClient[masterpb.ServerMessage, masterpb.MasterMessage]) error {
	t := time.NewTicker(r.cfg.Heartbeat)
	defer t.Stop()
	for {
		hb := &masterpb.Heartbeat{State: r.currentState()}
		if r.cfg.Connections != nil {
			hb.Connections = int32(r.cfg.Connections())
		}
		if err := st.Send(&masterpb.ServerMessage{Msg: &masterpb.ServerMessage_Heartbeat{Heartbeat: hb}}); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.New("registry session ended")
		case <-t.C:
		case <-r.kick:
		}
	}
}
