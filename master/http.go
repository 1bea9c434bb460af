package master

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// adminAddr is the admin HTTP address, "" when adminPort is not set.
func (m *Master) adminAddr() string {
	mc := m.env.Master
	if mc.AdminPort == 0 {
		return ""
	}
	return net.JoinHostPort(mc.AdminHost, strconv.Itoa(mc.AdminPort))
}

// adminMux routes the admin HTTP port: /metrics and /sd without the
// token (see observe.go), the dashboard with it (dashboard.go).
func (m *Master) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.metricsHandler())
	mux.HandleFunc("GET /sd", m.serveSD)
	m.dashboardRoutes(mux)
	return mux
}

// listenAdminHTTP opens the admin HTTP port, or returns nil without one.
func (m *Master) listenAdminHTTP() (net.Listener, error) {
	addr := m.adminAddr()
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("master: listen on adminPort %s: %w", addr, err)
	}
	return ln, nil
}

// serveAdminHTTP serves ln until ctx ends, then closes it; a dashboard's
// live stream is cut rather than waited for (bounded shutdown).
func (m *Master) serveAdminHTTP(ctx context.Context, ln net.Listener) {
	hs := &http.Server{Handler: m.adminMux(), ReadHeaderTimeout: 5 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		m.log.Error("admin HTTP stopped", "addr", ln.Addr().String(), "err", err)
		return
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := hs.Shutdown(shut); err != nil {
		hs.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		m.log.Warn("admin HTTP", "err", err)
	}
}
