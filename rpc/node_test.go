package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/proto/clusterpb"
)

type fakeFrontend struct {
	mu     sync.Mutex
	pushes []*clusterpb.PushRequest
	kicks  []*clusterpb.KickRequest
	hold   chan struct{} // when set, Push waits on it (no acknowledgements go out)
}

func (f *fakeFrontend) Push(req *clusterpb.PushRequest) *clusterpb.PushReply {
	f.mu.Lock()
	hold := f.hold
	f.pushes = append(f.pushes, req)
	f.mu.Unlock()
	if hold != nil {
		<-hold
	}
	var missing []string
	for _, u := range req.Uids {
		if u == "ghost" {
			missing = append(missing, u)
		}
	}
	if missing == nil {
		return nil // as app's frontend: nothing to report
	}
	return &clusterpb.PushReply{MissingUids: missing}
}

func (f *fakeFrontend) Bind(ctx context.Context, sid int64, uid string) clusterpb.BindStatus {
	if uid == "taken" {
		return clusterpb.BindStatus_BIND_UID_TAKEN
	}
	return clusterpb.BindStatus_BIND_OK
}

func (f *fakeFrontend) Check(sids []int64, uids []string) (gs []int64, gu []string) {
	for _, id := range sids {
		if id >= 100 {
			gs = append(gs, id)
		}
	}
	return gs, nil
}

func (f *fakeFrontend) Kick(ctx context.Context, req *clusterpb.KickRequest) int {
	f.mu.Lock()
	f.kicks = append(f.kicks, req)
	f.mu.Unlock()
	return len(req.SessionIds)
}

var deadlineSeen atomic.Bool

type testNode struct {
	*Node
	ln   net.Listener
	logs *syncBuffer

	mu   sync.Mutex
	gone []string // what Handlers.Gone reported: "inst: sessions uids"
}

func (n *testNode) goneReports() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.gone)
}

// syncBuffer is a log sink tests read.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startPair starts a frontend "fe" (fe-1, epoch 5, a fakeFrontend) and a
// backend "be" (be-1, epoch 9, serving h) that know each other.
func startPair(t testing.TB, h Handlers) (fe, be *testNode, front *fakeFrontend) {
	t.Helper()
	lnF, _ := net.Listen("tcp", "127.0.0.1:0")
	lnB, _ := net.Listen("tcp", "127.0.0.1:0")
	mf, mb := memberOn("fe-1", "connector", 5, lnF), memberOn("be-1", "chat", 9, lnB)
	mf.Frontend = true
	front = &fakeFrontend{}
	members := []Member{mf, mb}
	fe = startNode(t, mf, members, lnF, Handlers{Frontend: front})
	be = startNode(t, mb, members, lnB, h)
	return fe, be, front
}

// startNodes starts startPair's nodes, the backend serving the routes the
// tests use.
func startNodes(t testing.TB) (fe, be *testNode, front *fakeFrontend) {
	t.Helper()
	return startPair(t, Handlers{
		Forward: func(ctx context.Context, req *clusterpb.ForwardRequest) *clusterpb.ForwardReply {
			switch req.Route {
			case "chat.h.fail":
				return &clusterpb.ForwardReply{Error: ErrorReply(handler.Errorf(418, "teapot"))}
			case "chat.h.slow":
				<-ctx.Done() // the caller's deadline travelled here
				deadlineSeen.Store(true)
				time.Sleep(300 * time.Millisecond) // answer too late
				return &clusterpb.ForwardReply{}
			}
			return &clusterpb.ForwardReply{Body: append([]byte(req.Session.Uid+":"), req.Body...),
				Settings: map[string]string{"seen": "yes"}}
		},
		Call: func(ctx context.Context, req *clusterpb.CallRequest) *clusterpb.CallReply {
			return &clusterpb.CallReply{Body: []byte(req.From + "->" + string(req.Body))}
		},
		Holds: func(key string) (int64, error) {
			switch key {
			case "held":
				return 3, nil
			case "busy":
				return 0, errors.New("checking")
			}
			return 0, nil
		},
	})
}

func memberOn(id, typ string, epoch uint64, ln net.Listener) Member {
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	p, _ := strconv.Atoi(port)
	return Member{ID: id, Type: typ, Host: host, Port: p, State: StateRunning, Epoch: epoch}
}

// startNode serves self on ln with h, knowing members; it closes when the
// test ends. Handlers.Gone, if h has none, records into the node's gone.
func startNode(t testing.TB, self Member, members []Member, ln net.Listener, h Handlers, opts ...func(*Config)) *testNode {
	logs := &syncBuffer{}
	cfg := Config{Self: self, Secret: "s3cret", Membership: NewMembership(),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, o := range opts {
		o(&cfg)
	}
	cfg.Membership.Replace(members)
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{Node: n, ln: ln, logs: logs}
	if h.Gone == nil {
		h.Gone = func(inst Instance, sids []int64, uids []string) {
			tn.mu.Lock()
			tn.gone = append(tn.gone, fmt.Sprintf("%s: %v %v", inst, sids, uids))
			tn.mu.Unlock()
		}
	}
	served := make(chan struct{})
	go func() { defer close(served); n.Serve(ln, h) }()
	t.Cleanup(func() { n.Close(); <-served })
	return tn
}

func TestForwardCallPushBindKick(t *testing.T) {
	fe, be, front := startNodes(t)
	ctx := context.Background()

	rep, err := fe.Forward(ctx, "be-1", &clusterpb.ForwardRequest{Route: "chat.h.echo", Body: []byte("hi"),
		Session: &clusterpb.Session{FrontendId: "fe-1", Id: 7, Uid: "u7"}})
	if err != nil || string(rep.Body) != "u7:hi" || rep.Settings["seen"] != "yes" {
		t.Fatalf("forward: %v %+v", err, rep)
	}
	_, err = fe.Forward(ctx, "be-1", &clusterpb.ForwardRequest{Route: "chat.h.fail", Session: &clusterpb.Session{}})
	var herr *handler.Error
	if !errors.As(err, &herr) || herr.Code != 418 || herr.Msg != "teapot" {
		t.Fatalf("forward error: %v", err)
	}
	body, err := fe.Call(ctx, "be-1", &clusterpb.CallRequest{Route: "chat.r.m", Body: []byte("x")})
	if err != nil || string(body) != "fe-1->x" {
		t.Fatalf("call: %q %v", body, err)
	}
	prep, err := be.Push(ctx, "fe-1", &clusterpb.PushRequest{Route: "onChat", Body: []byte("{}"), Uids: []string{"u7", "ghost"}})
	if err == nil && (len(prep.MissingUids) != 1 || prep.MissingUids[0] != "ghost") {
		t.Fatalf("missing %v", prep.MissingUids)
	}
	if err != nil || len(prep.MissingUids) != 1 || len(front.pushes) != 1 {
		t.Fatalf("push: %v %+v", err, prep)
	}
	// A waiting push that reached everybody gets a reply all the same.
	if prep, err := be.Push(ctx, "fe-1", &clusterpb.PushRequest{Route: "onChat", Uids: []string{"u7"}}); err != nil || prep == nil ||
		len(prep.MissingUids) != 0 || prep.Error != nil {
		t.Fatalf("push to present sessions: %v %+v", err, prep)
	}
	if st, err := be.Bind(ctx, Instance{ID: "fe-1"}, 7, "taken"); err != nil || st != clusterpb.BindStatus_BIND_UID_TAKEN {
		t.Fatalf("bind: %v %v", st, err)
	}
	if n, err := be.Kick(ctx, "fe-1", &clusterpb.KickRequest{SessionIds: []int64{1, 2}}); err != nil || n != 2 {
		t.Fatalf("kick: %d %v", n, err)
	}
}

func TestManyConcurrentForwardsMatchReplies(t *testing.T) {
	fe, _, _ := startNodes(t)
	var wg sync.WaitGroup
	errs := make(chan error, 500)
	for i := 0; i < 500; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			want := fmt.Sprint(i)
			rep, err := fe.Forward(context.Background(), "be-1", &clusterpb.ForwardRequest{Route: "chat.h.echo",
				Body: []byte(want), Session: &clusterpb.Session{Uid: "u"}})
			if err != nil || string(rep.Body) != "u:"+want {
				errs <- fmt.Errorf("%d: %v %v", i, rep, err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestDeadlineTravels(t *testing.T) {
	fe, _, _ := startNodes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := fe.Forward(ctx, "be-1", &clusterpb.ForwardRequest{Route: "chat.h.slow", Session: &clusterpb.Session{}})
	var herr *handler.Error
	if !errors.As(err, &herr) || herr.Code != handler.CodeTimeout {
		t.Fatalf("err = %v, want a 504", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
	waitUntil(t, "the handler's context to end", deadlineSeen.Load)
}

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDeadPeerFailsFastAndLeavesRouting(t *testing.T) {
	fe, be, _ := startNodes(t)
	if got := fe.Membership().Eligible("chat"); len(got) != 1 {
		t.Fatalf("eligible before: %v", got)
	}
	if _, err := fe.Call(context.Background(), "be-1", &clusterpb.CallRequest{Route: "chat.r.m", Body: nil}); err != nil {
		t.Fatal(err)
	}
	be.Close()
	// Routing drops it once the connection fails.
	deadline := time.Now().Add(5 * time.Second)
	for len(fe.Membership().Eligible("chat")) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("dead peer still eligible for routing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Calls to it fail at once with 503, not after the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := fe.Call(ctx, "be-1", &clusterpb.CallRequest{Route: "chat.r.m", Body: nil})
	var herr *handler.Error
	if !errors.As(err, &herr) || herr.Code != handler.CodeUnavailable {
		t.Fatalf("err = %v, want 503", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("failing took %v", d)
	}
}

func TestSecretRequired(t *testing.T) {
	_, be, _ := startNodes(t)
	for _, opts := range [][]grpc.DialOption{
		{grpc.WithTransportCredentials(insecure.NewCredentials())},
		{grpc.WithTransportCredentials(insecure.NewCredentials()), WithSecret("wrong")},
	} {
		cc, err := grpc.NewClient(be.ln.Addr().String(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		_, err = clusterpb.NewClusterClient(cc).Kick(context.Background(), &clusterpb.KickRequest{})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("kick without the secret: %v", err)
		}
		st, err := clusterpb.NewClusterClient(cc).Forwards(context.Background())
		if err == nil {
			_, err = st.Recv()
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("stream without the secret: %v", err)
		}
		cc.Close()
	}
	// Refusals are logged, one line for a burst of them.
	if n := strings.Count(be.logs.String(), "cluster call refused: authentication failed"); n != 1 {
		t.Fatalf("%d log lines about refused calls, want 1:\n%s", n, be.logs)
	}
	if !strings.Contains(be.logs.String(), "why=\"no secret\"") || !strings.Contains(be.logs.String(), "peer=127.0.0.1:") {
		t.Fatalf("refusal line lacks why or peer:\n%s", be.logs)
	}
}

// Errors a client may see carry a code and a plain message; what failed
// where is only in the cause.
func TestCallErrorsKeepInternalsOut(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{context.DeadlineExceeded, handler.CodeTimeout},
		{status.Error(codes.Unimplemented, "this server does not take forwarded messages"), handler.CodeNotFound},
		{fmt.Errorf("forward: %w: %w", errStreamClosed, status.Error(codes.Unavailable, "connection refused 10.0.0.7:6050")), handler.CodeUnavailable},
	} {
		err := callError("forward chat.chatHandler.send to", "chat-server-1", tc.err)
		body := string(handler.ErrorBody(err))
		var herr *handler.Error
		if !errors.As(err, &herr) || herr.Code != tc.code {
			t.Fatalf("%v: got %v, want code %d", tc.err, err, tc.code)
		}
		for _, internal := range []string{"chat-server-1", "rpc error", "10.0.0.7", "stream"} {
			if strings.Contains(body, internal) {
				t.Fatalf("client body %s carries %q", body, internal)
			}
		}
		if !errors.Is(err, tc.err) && !strings.Contains(err.Error(), "chat-server-1") {
			t.Fatalf("cause lost: %v", err)
		}
	}
}

func unacked(p *peer) int {
	p.push.mu.Lock()
	defer p.push.mu.Unlock()
	return len(p.push.unacked)
}

// One-way pushes are acknowledged in batches: none stays unacknowledged.
func TestOneWayPushesAreAcknowledged(t *testing.T) {
	_, be, front := startNodes(t)
	for i := 0; i < 100; i++ {
		if _, err := be.PushMany(context.Background(), map[string]*clusterpb.PushRequest{
			"fe-1": {Route: "onChat", Body: []byte("{}"), Uids: []string{fmt.Sprint("u", i)}},
		}, false); err != nil {
			t.Fatal(err)
		}
	}
	p, err := be.peer("fe-1")
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "every push acknowledged", func() bool { return unacked(p) == 0 })
	front.mu.Lock()
	defer front.mu.Unlock()
	if len(front.pushes) != 100 {
		t.Fatalf("frontend got %d pushes", len(front.pushes))
	}
}

// A push stream that breaks with pushes unacknowledged gets their sessions
// kicked, so no client is left silently missing a message.
func TestLostPushesKickTheirSessions(t *testing.T) {
	_, be, front := startNodes(t)
	release := make(chan struct{})
	front.mu.Lock()
	front.hold = release // the frontend takes the first push and sends no ack
	front.mu.Unlock()
	ctx := context.Background()
	be.PushMany(ctx, map[string]*clusterpb.PushRequest{"fe-1": {Route: "onChat", Uids: []string{"a", "b"}}}, false)
	be.PushMany(ctx, map[string]*clusterpb.PushRequest{"fe-1": {Route: "onChat", SessionIds: []int64{7}, Uids: []string{"b"}}}, false)
	p, _ := be.peer("fe-1")
	if n := unacked(p); n != 2 {
		t.Fatalf("%d unacknowledged, want 2", n)
	}
	p.push.close() // the stream breaks
	close(release)
	waitUntil(t, "the kick", func() bool {
		front.mu.Lock()
		defer front.mu.Unlock()
		return len(front.kicks) == 1
	})
	k := front.kicks[0]
	if fmt.Sprint(k.Uids) != "[a b]" || fmt.Sprint(k.SessionIds) != "[7]" || k.Reason == "" {
		t.Fatalf("kick %+v", k)
	}
}
