package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shaddock/shaddock/connector"
	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/protocol"
)

// startEcho runs a real connector in-process with the echo route of
// examples/echo (answer with the request body), or with answer when it is
// not nil, and returns its address. It stops at the test's cleanup.
func startEcho(t *testing.T, heartbeat time.Duration, answer handler.Func) string {
	t.Helper()
	mux := handler.NewMux()
	if answer == nil {
		answer = func(ctx context.Context, r handler.Request) ([]byte, error) { return r.Body, nil }
	}
	mux.Handle(routeEcho, answer)
	dict, err := protocol.NewDictionary(mux.Routes())
	if err != nil {
		t.Fatal(err)
	}
	mux.Seal()
	srv, err := connector.New(connector.Config{
		ID: "echo-server-1", Type: "connector", Handler: mux.Serve, Dictionary: dict,
		Heartbeat: heartbeat, RequestRate: -1,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, srv)
}

// serve runs srv on a loopback port until the test ends and returns its
// address.
func serve(t *testing.T, srv *connector.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-served; err != nil && !errors.Is(err, connector.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func TestEchoWorkload(t *testing.T) {
	for _, tr := range []string{"tcp", "ws"} {
		t.Run(tr, func(t *testing.T) {
			addr := startEcho(t, 0, nil)
			var progress bytes.Buffer
			res, err := runEcho(t.Context(), echoConfig{
				Addr: addr, Transport: tr, Clients: 20, Size: 64,
				Warmup: 300 * time.Millisecond, Duration: 2 * time.Second,
				ConnectConcurrency: 8, ConnectTimeout: 10 * time.Second, Timeout: 5 * time.Second,
				Pids:     []*watchedPid{{Pid: os.Getpid(), Name: "self"}},
				Progress: &syncBuffer{b: &progress},
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.ErrorCount != 0 || res.Connected != 20 {
				t.Fatalf("errors %v, connected %d", res.Errors, res.Connected)
			}
			if res.Requests < 100 || res.ReqPerSec <= 0 || res.RoundTrip.Count != uint64(res.Requests) {
				t.Fatalf("requests %d, req/s %.0f, latency samples %d", res.Requests, res.ReqPerSec, res.RoundTrip.Count)
			}
			if l := res.RoundTrip; !(l.P50Ms > 0 && l.P50Ms <= l.P90Ms && l.P90Ms <= l.P99Ms && l.P99Ms <= l.MaxMs) {
				t.Fatalf("quantiles out of order: %+v", l)
			}
			if d := res.DurationS; d < 1.9 || d > 2.1 {
				t.Fatalf("measured window %.2fs, want 2s", d)
			}
			if res.CPU == nil || res.CPU.ServerSeconds <= 0 || len(res.CPU.Servers) != 1 {
				t.Fatalf("CPU report %+v", res.CPU)
			}
			var out strings.Builder
			writeEchoSummary(&out, res)
			if !strings.Contains(out.String(), "-rate -1") || !strings.Contains(out.String(), "req/s") {
				t.Fatalf("summary:\n%s", out.String())
			}
			if !strings.Contains(progress.String(), "req/s") {
				t.Fatalf("no progress line: %q", progress.String())
			}
		})
	}
}

func TestIdleWorkload(t *testing.T) {
	addr := startEcho(t, time.Second, nil) // heartbeats flow during the hold
	res, err := runIdle(t.Context(), idleConfig{
		Addr: addr, Transport: "ws", Sessions: 200, ServerPid: os.Getpid(),
		Hold: 2500 * time.Millisecond, ConnectConcurrency: 50,
		ConnectTimeout: 20 * time.Second, CloseTimeout: 20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.ErrorCount != 0 || res.Connected != 200 || res.LostDuringHold != 0 || !res.CloseComplete {
		t.Fatalf("result %+v", res)
	}
	if res.HeartbeatS != 1 {
		t.Fatalf("heartbeat %ds, want the server's 1s", res.HeartbeatS)
	}
	// The server is this process, so the figure is not meaningful here, but
	// it is computed from the samples.
	if res.BaselineRSS <= 0 || res.EndRSS <= 0 || len(res.RSSSamples) < 3 || res.PeakRSS < res.EndRSS {
		t.Fatalf("RSS: baseline %d end %d peak %d, %d samples", res.BaselineRSS, res.EndRSS, res.PeakRSS, len(res.RSSSamples))
	}
	if want := float64(res.EndRSS-res.BaselineRSS) / 200; res.BytesPerSession != want {
		t.Fatalf("bytes per session %.0f, want %.0f", res.BytesPerSession, want)
	}
	if res.Connect.Count != 200 {
		t.Fatalf("connect latency samples %d", res.Connect.Count)
	}
}

// TestRobotCommand runs the command itself: flags, JSON, exit status.
func TestRobotCommand(t *testing.T) {
	addr := startEcho(t, 0, nil)
	file := filepath.Join(t.TempDir(), "echo.json")
	var stdout, stderr bytes.Buffer
	code := robot(t.Context(), []string{"echo", "-addr", addr, "-ws=false", "-clients", "5", "-warmup", "0s",
		"-duration", "1s", "-json", file}, &stdout, &syncBuffer{b: &stderr}, false)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	var res EchoResult
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if res.Workload != "echo" || res.Transport != "tcp" || res.Requests == 0 || !strings.Contains(stdout.String(), "robot echo:") {
		t.Fatalf("result %+v\nstdout:\n%s", res, stdout.String())
	}

	if code := robot(t.Context(), []string{"nosuch"}, &stdout, &stderr, false); code != 2 {
		t.Fatalf("unknown workload: exit %d", code)
	}
	if code := robot(t.Context(), []string{"idle", "-addr", addr}, &stdout, &stderr, false); code != 2 {
		t.Fatalf("idle without -server-pid: exit %d", code)
	}
	if code := robot(t.Context(), []string{"idle", "-addr", addr, "-server-pid", "1", "-rooms", "2", "-handshake-only"}, &stdout, &stderr, false); code != 2 {
		t.Fatalf("idle -rooms with -handshake-only: exit %d", code)
	}
}

// TestRobotCommandErrors: wrong replies are counted by kind and fail the run
// unless -allow-errors.
func TestRobotCommandErrors(t *testing.T) {
	addr := startEcho(t, 0, func(ctx context.Context, r handler.Request) ([]byte, error) {
		return nil, handler.Errorf(handler.CodeTooManyRequests, "slow down")
	})
	args := []string{"echo", "-addr", addr, "-clients", "2", "-warmup", "0s", "-duration", "300ms"}
	var stdout, stderr bytes.Buffer
	if code := robot(t.Context(), args, &stdout, &syncBuffer{b: &stderr}, false); code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, stdout.String())
	}
	if !strings.Contains(stdout.String(), "echo: code 429") {
		t.Fatalf("errors not reported by kind:\n%s", stdout.String())
	}
	stdout.Reset()
	if code := robot(t.Context(), append(args, "-allow-errors", "-json", "-"), &stdout, &syncBuffer{b: &stderr}, false); code != 0 {
		t.Fatalf("-allow-errors: exit %d", code)
	}
	var res EchoResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("-json - did not put only JSON on stdout: %v\n%s", err, stdout.String())
	}
	if res.ErrorCount == 0 || res.Errors[0].Kind != "echo: code 429" {
		t.Fatalf("errors %+v", res.Errors)
	}
}

func TestProcReaders(t *testing.T) {
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if rss, err := procRSS(os.Getpid()); err != nil || rss < 1<<20 {
		t.Fatalf("rss %d, %v", rss, err)
	}
	if busy, total, err := machineCPU(); err != nil || busy <= 0 || total < busy {
		t.Fatalf("machine busy %v total %v: %v", busy, total, err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a-server.pid"), []byte(" 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pids, err := resolvePids("1, gate-server-1=2", filepath.Join(dir, "*.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) != 2 || pids[0].Pid != 1 || pids[1].Pid != 2 || pids[1].Name != "gate-server-1" {
		t.Fatalf("pids %+v", pids)
	}
	if pids, err := resolvePids("", filepath.Join(dir, "*.pid")); err != nil || pids[0].Name != "a-server" {
		t.Fatalf("pid file names: %+v, %v", pids, err)
	}
	if _, err := resolvePids("x=y", ""); err == nil {
		t.Fatal("bad pid accepted")
	}
	if _, err := resolvePids("", filepath.Join(dir, "*.none")); err == nil {
		t.Fatal("empty glob accepted")
	}
}

// syncBuffer is a bytes.Buffer written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// startRooms runs a real connector in-process whose
// connector.entryHandler.enter behaves as examples/chat's: it binds
// username*rid (a duplicate gets {code:500, error:true}), pushes onAdd to the
// room's members, joins the room and answers its users.
func startRooms(t *testing.T) string {
	t.Helper()
	var (
		srv   *connector.Server
		mu    sync.Mutex
		rooms = map[string][]string{}
	)
	mux := handler.NewMux()
	mux.Handle(routeEnter, func(ctx context.Context, r handler.Request) ([]byte, error) {
		var req struct{ Username, Rid string }
		if err := json.Unmarshal(r.Body, &req); err != nil || req.Username == "" || req.Rid == "" {
			return nil, handler.Errorf(handler.CodeBadRequest, "bad enter %s", r.Body)
		}
		uid := req.Username + "*" + req.Rid
		if err := r.Session.Bind(ctx, uid); err != nil {
			return []byte(`{"code":500,"error":true}`), nil
		}
		mu.Lock()
		defer mu.Unlock()
		var uids []string
		for _, u := range rooms[req.Rid] {
			uids = append(uids, u+"*"+req.Rid)
		}
		add, _ := json.Marshal(map[string]string{"route": "onAdd", "user": req.Username})
		if _, err := srv.PushToUIDs(uids, "onAdd", add); err != nil {
			return nil, err
		}
		rooms[req.Rid] = append(rooms[req.Rid], req.Username)
		return json.Marshal(map[string][]string{"users": rooms[req.Rid]})
	})
	dict, err := protocol.NewDictionary(append(mux.Routes(), "onAdd"))
	if err != nil {
		t.Fatal(err)
	}
	mux.Seal()
	srv, err = connector.New(connector.Config{
		ID: "connector-server-1", Type: "connector", Handler: mux.Serve, Dictionary: dict,
		Heartbeat: time.Second, RequestRate: -1, BindPolicy: connector.BindReject,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, srv)
}

// TestIdleEnterWorkload: -rooms enters every session in its room; the onAdd
// pushes arrive and are counted; another process's RSS is reported.
func TestIdleEnterWorkload(t *testing.T) {
	for _, tr := range []string{"tcp", "ws"} {
		t.Run(tr, func(t *testing.T) {
			addr := startRooms(t)
			const sessions, rooms = 60, 4
			res, err := runIdle(t.Context(), idleConfig{
				Addr: addr, Transport: tr, Sessions: sessions, Rooms: rooms, ServerPid: os.Getpid(),
				Hold: 1500 * time.Millisecond, ConnectConcurrency: 1, // in order: the onAdd count is exact
				ConnectTimeout: 20 * time.Second, CloseTimeout: 20 * time.Second,
				Pids: []*watchedPid{{Pid: os.Getpid(), Name: "self"}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.ErrorCount != 0 || res.Connected != sessions || res.LostDuringHold != 0 || !res.CloseComplete {
				t.Fatalf("result %+v", res)
			}
			if res.Mode != "enter" || res.Rooms != rooms {
				t.Fatalf("mode %q rooms %d", res.Mode, res.Rooms)
			}
			// Room of 15: each newcomer is announced to those already in.
			if want := int64(rooms * 15 * 14 / 2); res.Pushes != want {
				t.Fatalf("pushes %d, want %d", res.Pushes, want)
			}
			if len(res.Others) != 1 || res.Others[0].Name != "self" || res.Others[0].Baseline <= 0 || res.Others[0].End <= 0 {
				t.Fatalf("others %+v", res.Others)
			}
			var out strings.Builder
			writeIdleSummary(&out, res)
			if !strings.Contains(out.String(), "entered in 4 rooms") || !strings.Contains(out.String(), "self") {
				t.Fatalf("summary:\n%s", out.String())
			}

			// A connector without the enter route: every session's failure
			// is counted by kind.
			bad, err := runIdle(t.Context(), idleConfig{
				Addr: startEcho(t, 0, nil), Transport: tr, Sessions: 3, Rooms: rooms, ServerPid: os.Getpid(),
				Hold: 10 * time.Millisecond, ConnectConcurrency: 3,
				ConnectTimeout: 20 * time.Second, CloseTimeout: 20 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			if bad.Connected != 0 || bad.ErrorCount != 3 || len(bad.Errors) != 1 || !strings.HasPrefix(bad.Errors[0].Kind, "connect: enter: code 404") {
				t.Fatalf("enter refused: connected %d, errors %+v", bad.Connected, bad.Errors)
			}
		})
	}
}
