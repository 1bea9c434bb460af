package master

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shaddock/shaddock/proto/masterpb"
	"github.com/shaddock/shaddock/rpc"
)

func TestAuth(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "/nonexistent/game", "")
	runMaster(t, c)
	good := dial(t, c) // the real client: token from the run directory
	secret, err := loadOrCreateSecret(c.paths.SecretFile("test"))
	if err != nil {
		t.Fatal(err)
	}
	conn := func(opts ...grpc.DialOption) *grpc.ClientConn {
		cc, err := grpc.NewClient(good.cc.Target(), append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	register := func(cc *grpc.ClientConn) error {
		st, err := masterpb.NewRegistryClient(cc).Register(ctx)
		if err != nil {
			return err
		}
		st.Send(&masterpb.ServerMessage{Msg: &masterpb.ServerMessage_Hello{Hello: &masterpb.Hello{
			Info: &masterpb.ServerInfo{Id: "probe-1", Type: "probe", Host: "127.0.0.1", Port: 1}, State: masterpb.ServerState_RUNNING}}})
		msg, err := st.Recv()
		if err != nil {
			return err
		}
		if ms := msg.GetMembership().GetMembers(); len(ms) != 1 || ms[0].GetInfo().GetId() != "probe-1" {
			t.Errorf("first message %v: want a membership of probe-1", msg)
		}
		return nil
	}
	list := func(cc *grpc.ClientConn) error {
		_, err := masterpb.NewAdminClient(cc).List(ctx, &masterpb.ListRequest{})
		return err
	}
	for _, tc := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"registry without secret", func() error { return register(conn()) }, codes.Unauthenticated},
		{"registry with a wrong secret", func() error { return register(conn(rpc.WithSecret(strings.Repeat("0", 64)))) }, codes.Unauthenticated},
		{"registry with the admin token", func() error { return register(conn(grpc.WithPerRPCCredentials(tokenCreds(mustToken(t, c))))) }, codes.Unauthenticated},
		{"registry with the secret", func() error { return register(conn(rpc.WithSecret(secret))) }, codes.OK},
		{"admin without token", func() error { return list(conn()) }, codes.Unauthenticated},
		{"admin with a wrong token", func() error { return list(conn(grpc.WithPerRPCCredentials(tokenCreds("wrong")))) }, codes.Unauthenticated},
		{"admin with the cluster secret", func() error { return list(conn(rpc.WithSecret(secret))) }, codes.Unauthenticated},
		{"admin with the token", func() error { return list(conn(grpc.WithPerRPCCredentials(tokenCreds(mustToken(t, c))))) }, codes.OK},
	} {
		if got := status.Code(tc.call()); got != tc.want {
			t.Errorf("%s: code %v, want %v", tc.name, got, tc.want)
		}
	}
}

func mustToken(t *testing.T, c *cluster) string {
	t.Helper()
	tok, err := readToken(c.paths.TokenFile("test"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestSecondMasterRefused(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "/nonexistent/game", "")
	runMaster(t, c)
	dial(t, c)
	m2, err := New(Config{Env: c.env, ConfigPath: c.path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	err = m2.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second master: %v, want 'already running'", err)
	}
	if pid, err := c.paths.MasterPID("test"); err != nil || pid != os.Getpid() {
		t.Fatalf("MasterPID = %d, %v; want this process", pid, err)
	}
}

// heldCluster configures two chat servers whose cluster ports are held by
// the test: to a starting master they look alive (an earlier master's
// servers whose pids it does not know), so it waits for them to register
// before sending any membership, and starts nothing.
func heldCluster(t *testing.T) (*cluster, [2]rpc.Member) {
	t.Helper()
	var ms [2]rpc.Member
	var entries string
	for i := range ms {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		port := ln.Addr().(*net.TCPAddr).Port
		ms[i] = rpc.Member{ID: []string{"chat-a", "chat-b"}[i], Type: "chat", Host: "127.0.0.1", Port: port, PID: os.Getpid(), Started: time.Now()}
		entries += "[[test.chat]]\nid = \"" + ms[i].ID + "\"\nhost = \"127.0.0.1\"\nport = " + itoa(port) + "\n\n"
	}
	return newCluster(t, "/nonexistent/game", entries), ms
}

func itoa(n int) string { return strconv.Itoa(n) }

// register runs a real registry client (the one every server runs) for m.
func register(t *testing.T, c *cluster, self rpc.Member) (*rpc.Registry, *rpc.Membership) {
	t.Helper()
	secret, err := loadOrCreateSecret(c.paths.SecretFile("test"))
	if err != nil {
		t.Fatal(err)
	}
	mem := rpc.NewMembership()
	r := rpc.NewRegistry(rpc.RegistryConfig{Master: net.JoinHostPort("127.0.0.1", itoa(c.env.Master.Port)), Secret: secret,
		Self: self, Membership: mem, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	r.SetState(rpc.StateRunning)
	return r, mem
}

func ids(mem *rpc.Membership) []string {
	var out []string
	for _, m := range mem.All() {
		out = append(out, m.ID)
	}
	return out
}

// A restarted master must not send a partial snapshot: a server replaces its
// whole view with it and would stop routing to live peers.
func TestSettlingWaitsForEveryLiveServer(t *testing.T) {
	t.Parallel()
	c, ms := heldCluster(t)
	start := time.Now()
	runMaster(t, c)
	dial(t, c)
	ra, memA := register(t, c, ms[0])
	select {
	case <-ra.Synced():
		t.Fatalf("chat-a got a membership %v after %v, before chat-b (alive) registered", ids(memA), time.Since(start))
	case <-time.After(time.Until(start.Add(700 * time.Millisecond))):
		// Without settling chat-a would have its view within milliseconds;
		// chat-b then has 1.3 s of the grace period to register in, under
		// -race on a loaded machine.
	}
	rb, memB := register(t, c, ms[1])
	for _, r := range []*rpc.Registry{ra, rb} {
		select {
		case <-r.Synced():
		case <-time.After(time.Until(start.Add(settleGrace))):
			t.Fatalf("no membership before the grace period although every live server registered (%v)", time.Since(start))
		}
	}
	// The very first view each gets holds both.
	for _, mem := range []*rpc.Membership{memA, memB} {
		if got := ids(mem); len(got) != 2 {
			t.Errorf("first membership %v: want chat-a and chat-b", got)
		}
	}
}

func TestSettlingEndsAfterTheGracePeriod(t *testing.T) {
	t.Parallel()
	c, ms := heldCluster(t)
	start := time.Now()
	runMaster(t, c)
	dial(t, c)
	ra, memA := register(t, c, ms[0]) // chat-b never registers
	select {
	case <-ra.Synced():
		if d := time.Since(start); d < settleGrace-100*time.Millisecond {
			t.Fatalf("membership after %v, before the %v grace period", d, settleGrace)
		}
	case <-time.After(settleGrace + 3*time.Second):
		t.Fatal("no membership well after the grace period")
	}
	if got := ids(memA); len(got) != 1 || got[0] != "chat-a" {
		t.Errorf("membership %v: want chat-a", got)
	}
	// Later registrations are sent at once, to everyone.
	rb, memB := register(t, c, ms[1])
	select {
	case <-rb.Synced():
	case <-time.After(2 * time.Second):
		t.Fatal("chat-b got no membership after settling")
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(ids(memA)) != 2 || len(ids(memB)) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("views after chat-b registered: chat-a %v, chat-b %v", ids(memA), ids(memB))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rawRegister opens a registry stream by hand and sends only a Hello.
func rawRegister(t *testing.T, c *cluster, ctx context.Context, id string) grpc.BidiStreamingClient[masterpb.ServerMessage, masterpb.MasterMessage] {
	t.Helper()
	return rawHello(t, c, ctx, &masterpb.ServerInfo{Id: id, Type: "chat", Host: "127.0.0.1", Port: 1})
}

// rawHello opens a registry stream by hand and sends only a Hello with info.
func rawHello(t *testing.T, c *cluster, ctx context.Context, info *masterpb.ServerInfo) grpc.BidiStreamingClient[masterpb.ServerMessage, masterpb.MasterMessage] {
	t.Helper()
	secret, err := loadOrCreateSecret(c.paths.SecretFile("test"))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(net.JoinHostPort("127.0.0.1", itoa(c.env.Master.Port)),
		grpc.WithTransportCredentials(insecure.NewCredentials()), rpc.WithSecret(secret))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	st, err := masterpb.NewRegistryClient(cc).Register(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = st.Send(&masterpb.ServerMessage{Msg: &masterpb.ServerMessage_Hello{Hello: &masterpb.Hello{
		Info: info, State: masterpb.ServerState_RUNNING}}})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func waitMember(t *testing.T, mem *rpc.Membership, id string, want rpc.State, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m, ok := mem.Get(id); ok && m.State == want {
			return
		}
		if time.Now().After(deadline) {
			m, _ := mem.Get(id)
			t.Fatalf("%s: state %v after %v, want %v", id, m.State, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLostServers(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "/nonexistent/game", "")
	runMaster(t, c)
	dial(t, c)
	_, mem := register(t, c, rpc.Member{ID: "watcher", Type: "chat", Host: "127.0.0.1", Port: 2, PID: os.Getpid()})

	// A stream that ends while its server is not stopping: lost at once.
	ctx, cancel := context.WithCancel(context.Background())
	rawRegister(t, c, ctx, "crashy")
	waitMember(t, mem, "crashy", rpc.StateRunning, 5*time.Second)
	cancel()
	waitMember(t, mem, "crashy", rpc.StateLost, time.Second)

	// A server that stops heartbeating: lost after 5 s.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	rawRegister(t, c, ctx, "silent")
	waitMember(t, mem, "silent", rpc.StateRunning, 5*time.Second)
	waitMember(t, mem, "silent", rpc.StateLost, heartbeatTimeout+2*time.Second)
	if d := time.Since(start); d < heartbeatTimeout {
		t.Errorf("lost after %v, before the %v heartbeat timeout", d, heartbeatTimeout)
	}
	// The watcher, heartbeating, is still running.
	waitMember(t, mem, "watcher", rpc.StateRunning, time.Second)
}

// A server the master did not start (not in the config) stops on the stop
// command and leaves the membership when its stream ends.
func TestStopUnconfiguredServer(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "/nonexistent/game", "")
	runMaster(t, c)
	cl := dial(t, c)
	_, mem := register(t, c, rpc.Member{ID: "watcher", Type: "chat", Host: "127.0.0.1", Port: 2, PID: os.Getpid()})

	secret, _ := loadOrCreateSecret(c.paths.SecretFile("test"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan string, 1)
	var r *rpc.Registry
	r = rpc.NewRegistry(rpc.RegistryConfig{Master: net.JoinHostPort("127.0.0.1", itoa(c.env.Master.Port)), Secret: secret,
		Self: rpc.Member{ID: "extra-1", Type: "extra", Host: "127.0.0.1", Port: 3, PID: os.Getpid()}, Membership: rpc.NewMembership(),
		Logger: slog.New(slog.DiscardHandler),
		OnStop: func(reason string, _ time.Duration) {
			r.SetState(rpc.StateStopping)
			stopped <- reason
			time.Sleep(100 * time.Millisecond)
			cancel() // the server exits
		}})
	go r.Run(ctx)
	r.SetState(rpc.StateRunning)
	waitMember(t, mem, "extra-1", rpc.StateRunning, 5*time.Second)

	var lines []string
	err := cl.Stop(context.Background(), &masterpb.StopRequest{Select: &masterpb.Selector{Types: []string{"extra"}}, Reason: "bye"}, progressLog(&lines))
	if err != nil {
		t.Fatalf("stop: %v %q", err, lines)
	}
	if got := <-stopped; got != "bye" {
		t.Errorf("stop reason %q", got)
	}
	if len(lines) != 2 || !strings.Contains(lines[1], "extra-1 stopped") {
		t.Errorf("progress %q", lines)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, ok := mem.Get("extra-1"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("extra-1 still a member after it stopped")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Stopping it again finds nothing; the watcher is untouched.
	if err := cl.Stop(context.Background(), &masterpb.StopRequest{Select: &masterpb.Selector{Ids: []string{"extra-1"}}}, nil); status.Code(err) != codes.NotFound {
		t.Errorf("second stop: %v, want NotFound", err)
	}
	waitMember(t, mem, "watcher", rpc.StateRunning, time.Second)
}

// Refused control-port calls are logged, at most one line per 10 s, with a
// count of those in between.
func TestAuthRefusalsLoggedRateLimited(t *testing.T) {
	var buf logBuffer
	a := newAuthorizer(strings.Repeat("a", 64), "t", slog.New(slog.NewTextHandler(&buf, nil)))
	now := time.Now()
	a.rate.Now = func() time.Time { return now }
	for range 100 {
		if err := a.check(context.Background(), adminPrefix+"List"); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("check: %v", err)
		}
	}
	if n := strings.Count(buf.String(), "control port call refused"); n != 1 || !strings.Contains(buf.String(), "method=/shaddock.master.v1.Admin/List") {
		t.Fatalf("100 refusals logged %d times:\n%s", n, buf.String())
	}
	now = now.Add(authLogEvery) // the interval has passed
	a.check(context.Background(), registryPrefix+"Register")
	if !strings.Contains(buf.String(), "more_refused_since_last_line=99") {
		t.Errorf("the next line does not count the 99 unlogged refusals:\n%s", buf.String())
	}
}
