// Command echo is a standalone connector with an echo handler: the smallest
// runnable shaddock frontend, used by the interop tests and the benchmarks.
//
// Routes (all on the connector server type):
//
//	connector.echoHandler.echo       request: answers with the request body
//	connector.echoHandler.push       notify:  pushes the body back as onEcho
//	connector.echoHandler.broadcast  notify:  pushes the body as onBroadcast to every session
//	connector.echoHandler.kick       request: kicks the session, {"reason": "..."}
//	connector.echoHandler.bind       request: binds {"uid": "..."} to the session
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/shaddock/shaddock/connector"
	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/protocol"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:3010", "listen address (TCP and WebSocket)")
	heartbeat := flag.Duration("heartbeat", 30*time.Second, "heartbeat interval announced to clients (0 disables)")
	rate := flag.Float64("rate", 1000, "requests per second per session (negative: unlimited)")
	level := flag.String("log", "info", "log level: debug, info, warn, error")
	stats := flag.Duration("stats", 0, "log sessions, goroutines and Go memory (stacks, heap) at this interval (0: never)")
	flag.Parse()

	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	if err := run(*addr, *heartbeat, *rate, *stats, log); err != nil {
		log.Error("echo server failed", "err", err)
		os.Exit(1)
	}
}

func run(addr string, heartbeat time.Duration, rate float64, stats time.Duration, log *slog.Logger) error {
	if heartbeat == 0 {
		heartbeat = -1
	}
	var srv *connector.Server
	mux := handler.NewMux()
	register(mux, func() *connector.Server { return srv })
	dict, err := protocol.NewDictionary(append(mux.Routes(), "onEcho", "onBroadcast"))
	if err != nil {
		return err
	}
	mux.Seal()
	srv, err = connector.New(connector.Config{
		ID: "echo-server-1", Type: "connector",
		Handler: mux.Serve, Dictionary: dict,
		Heartbeat: heartbeat, RequestRate: rate,
		Logger: log,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	log.Info("echo connector listening", "addr", ln.Addr().String(), "pid", os.Getpid())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if stats > 0 {
		go logStats(ctx, srv, stats, log)
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, connector.ErrServerClosed) {
		return err
	}
	return nil
}

// register adds the echo routes; srv is resolved at call time because the
// server is built after its dictionary, which is built from the routes.
func register(mux *handler.Mux, srv func() *connector.Server) {
	mux.Handle("connector.echoHandler.echo", func(ctx context.Context, r handler.Request) ([]byte, error) {
		return r.Body, nil
	})
	mux.Handle("connector.echoHandler.push", func(ctx context.Context, r handler.Request) ([]byte, error) {
		return nil, r.Session.Push(ctx, "onEcho", json.RawMessage(r.Body))
	})
	mux.Handle("connector.echoHandler.broadcast", func(ctx context.Context, r handler.Request) ([]byte, error) {
		return nil, srv().Broadcast("onBroadcast", r.Body)
	})
	type kickReq struct {
		Reason string `json:"reason"`
	}
	mux.Handle("connector.echoHandler.kick", handler.Typed(func(ctx context.Context, s handler.Session, req *kickReq) (*struct{}, error) {
		return &struct{}{}, s.Kick(ctx, req.Reason)
	}))
	type bindReq struct {
		UID string `json:"uid"`
	}
	type bindResp struct {
		Code int `json:"code"`
	}
	mux.Handle("connector.echoHandler.bind", handler.Typed(func(ctx context.Context, s handler.Session, req *bindReq) (*bindResp, error) {
		if err := s.Bind(ctx, req.UID); err != nil {
			return &bindResp{Code: 500}, nil
		}
		return &bindResp{Code: 200}, nil
	}))
}

// logStats shows where an idle connector's memory goes (the benchmarks read
// it to split bytes per session into stacks and heap).
func logStats(ctx context.Context, srv *connector.Server, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		log.Info("stats", "sessions", srv.Len(), "goroutines", runtime.NumGoroutine(),
			"stack_inuse", m.StackInuse, "heap_inuse", m.HeapInuse, "heap_alloc", m.HeapAlloc, "sys", m.Sys)
	}
}
