package main

import (
	"context"
	"crypto/tls"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"time"

	"github.com/shaddock/shaddock/app"
)

//go:embed web
var webFiles embed.FS

// serveWeb serves the chat page until ctx ends. /config.json tells the page
// where the gate is (this server's client address).
func serveWeb(ctx context.Context, addr string, a *app.App) error {
	root, err := fs.Sub(webFiles, "web")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(root))
	mux.HandleFunc("GET /config.json", func(w http.ResponseWriter, r *http.Request) {
		self, ok := a.Membership().Get(a.Info().ID)
		if !ok {
			http.Error(w, "gate not registered yet", http.StatusServiceUnavailable)
			return
		}
		host := self.ClientHost
		if host == "" {
			host = self.Host
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(map[string]any{"gateHost": host, "gatePort": self.ClientPort})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("chat page: listen %s: %w", addr, err)
	}
	scheme := "http"
	if cfg := a.Info().TLS; cfg != nil {
		// The gate's certificate: a page that came over https can only
		// open wss://, which the gate and connectors then serve.
		ln, scheme = tls.NewListener(ln, cfg), "https"
	}
	a.Logger().Info("chat page", "url", scheme+"://"+ln.Addr().String()+"/")
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("chat page: %w", err)
	}
	return nil
}
