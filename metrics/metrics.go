// Package metrics is the Prometheus instrumentation of one shaddock server
// process: the series DESIGN §12 names (shaddock_sessions,
// shaddock_requests_total, shaddock_request_duration_seconds,
// shaddock_pushes_total, shaddock_server_info), a few more an operator
// needs (backend handling, cluster pushes), the Go and process collectors,
// and the HTTP handler that serves them.
//
// Every Server has its own prometheus.Registry: nothing is registered
// globally, so several servers (or tests) in one process never collide.
// The request path is cheap by construction: the series of every
// registered route are resolved once, in New, so counting a request is a
// map read, two atomic adds and a histogram observation, with no lock, no
// allocation and no label hashing (see BenchmarkObserve).
//
// It is not for: deciding what a request's code is (the caller says), the
// master's series (master/ has its own registry), or pushing anywhere:
// Prometheus scrapes.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shaddock/shaddock/handler"
)

// OtherRoute is the route label of requests on routes no handler was
// registered for: clients choose routes, so counting them as sent would let
// any client grow the series without bound.
const OtherRoute = "other"

// Buckets of the request duration histograms, in seconds: from a local
// handler's tenth of a millisecond to the 10 s request timeout.
var defaultBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Config describes the server being measured.
type Config struct {
	ID, Type, Group string
	// Build is the build id `master list` shows (first 12 hex of the
	// binary's SHA-256).
	Build string
	// Routes are the routes the game registered (client routes and
	// remotes); every other route is counted as OtherRoute.
	Routes []string
	// KickReasons names the kick reasons worth their own label value
	// (reason text → label); every other reason is counted as "other".
	KickReasons map[string]string
	// Sessions, if set, reports the client sessions connected (a
	// frontend); it is called at scrape time only. CountSessions sets it
	// later, for a frontend built after its metrics.
	Sessions func() int
}

// Server holds one process's metrics. Its methods are safe for concurrent
// use, and the counting ones do nothing on a nil *Server, so a server
// without a metricsPort pays nothing but a nil check.
type Server struct {
	reg *prometheus.Registry

	// routes maps a registered route to its resolved series; written in
	// New only, so reads need no lock.
	routes map[string]*routeSeries
	other  *routeSeries

	requests        *prometheus.CounterVec
	backendRequests *prometheus.CounterVec
	pushes          prometheus.Counter
	clusterPushes   prometheus.Counter
	notifies        *prometheus.CounterVec
	kicks           map[string]prometheus.Counter // by reason text; read-only after New
	otherKicks      prometheus.Counter
}

// routeSeries are one route's series, resolved once.
type routeSeries struct {
	name        string
	ok          prometheus.Counter  // shaddock_requests_total{route, code="200"}
	duration    prometheus.Observer // shaddock_request_duration_seconds{route}
	backendOK   prometheus.Counter  // shaddock_backend_requests_total{route, code="200"}
	backendTime prometheus.Observer // shaddock_backend_request_duration_seconds{route}
	notify      prometheus.Counter  // shaddock_notifies_total{route}
}

// New returns the metrics of the server cfg describes.
func New(cfg Config) *Server {
	reg := prometheus.NewRegistry()
	s := &Server{reg: reg, routes: make(map[string]*routeSeries, len(cfg.Routes))}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shaddock_requests_total",
		Help: "Client requests answered by this frontend, by route and response code (each request counted once, by the frontend that received it).",
	}, []string{"route", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "shaddock_request_duration_seconds",
		Help:    "Time from a client request's dispatch on this frontend to its answer, forwarding included, by route.",
		Buckets: defaultBuckets,
	}, []string{"route"})
	s.backendRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shaddock_backend_requests_total",
		Help: "Messages forwarded by frontends and remote calls handled on this server, by route and code.",
	}, []string{"route", "code"})
	backendTime := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "shaddock_backend_request_duration_seconds",
		Help:    "Time this server's handlers took for forwarded messages and remote calls, by route.",
		Buckets: defaultBuckets,
	}, []string{"route"})
	s.notifies = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shaddock_notifies_total",
		Help: "Client notifies (messages without a response) received by this frontend, by route.",
	}, []string{"route"})
	s.pushes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shaddock_pushes_total",
		Help: "Pushes queued to client sessions on this frontend (one per session reached).",
	})
	s.clusterPushes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shaddock_cluster_pushes_total",
		Help: "Push requests received from other servers (each may reach many sessions).",
	})
	kicks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shaddock_kicks_total",
		Help: "Client sessions this frontend kicked at another server's or the cluster's request, by reason.",
	}, []string{"reason"})
	s.kicks = make(map[string]prometheus.Counter, len(cfg.KickReasons))
	for text, label := range cfg.KickReasons {
		s.kicks[text] = kicks.WithLabelValues(label)
	}
	s.otherKicks = kicks.WithLabelValues("other")
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "shaddock_server_info",
		Help:        "Always 1; the labels describe the server.",
		ConstLabels: prometheus.Labels{"id": cfg.ID, "type": cfg.Type, "group": cfg.Group, "build": cfg.Build},
	})
	info.Set(1)
	reg.MustRegister(kicks, s.requests, duration, s.backendRequests, backendTime, s.notifies, s.pushes, s.clusterPushes, info,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cfg.Sessions != nil {
		s.CountSessions(cfg.Sessions)
	}

	resolve := func(route string) *routeSeries {
		return &routeSeries{
			name:        route,
			ok:          s.requests.WithLabelValues(route, "200"),
			duration:    duration.WithLabelValues(route),
			backendOK:   s.backendRequests.WithLabelValues(route, "200"),
			backendTime: backendTime.WithLabelValues(route),
			notify:      s.notifies.WithLabelValues(route),
		}
	}
	for _, r := range cfg.Routes {
		if _, dup := s.routes[r]; !dup && r != OtherRoute {
			s.routes[r] = resolve(r)
		}
	}
	s.other = resolve(OtherRoute)
	// Resolving made every route's series exist at 0, so a rate() has a
	// start; the code-200 children stay, the backend ones are harmless.
	return s
}

// CountSessions makes shaddock_sessions report fn(), read at scrape time.
// Call it once, before serving: a frontend's metrics are made before its
// connector (which takes the wrapped handler), its session count after.
func (s *Server) CountSessions(fn func() int) {
	s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shaddock_sessions",
		Help: "Client sessions connected to this frontend.",
	}, func() float64 { return float64(fn()) }))
}

// route returns the series of route, OtherRoute's for an unknown one.
func (s *Server) route(route string) *routeSeries {
	if r, ok := s.routes[route]; ok {
		return r
	}
	return s.other
}

// Request counts one client request a frontend answered with code, which
// took d from dispatch to answer.
func (s *Server) Request(route string, code int, d time.Duration) {
	if s == nil {
		return
	}
	r := s.route(route)
	if code == 200 {
		r.ok.Inc()
	} else {
		s.requests.WithLabelValues(r.name, codeLabel(code)).Inc()
	}
	r.duration.Observe(d.Seconds())
}

// Refused counts one client request a frontend answered without its
// handler (over the rate, shutting down, an undecodable body): in
// shaddock_requests_total, not in the duration histogram, which times
// handlers.
func (s *Server) Refused(route string, code int) {
	if s == nil {
		return
	}
	s.requests.WithLabelValues(s.route(route).name, codeLabel(code)).Inc()
}

// Notify counts one client notify a frontend received.
func (s *Server) Notify(route string) {
	if s != nil {
		s.route(route).notify.Inc()
	}
}

// Handled counts one forwarded message or remote call this server's
// handlers answered with code in d.
func (s *Server) Handled(route string, code int, d time.Duration) {
	if s == nil {
		return
	}
	r := s.route(route)
	if code == 200 {
		r.backendOK.Inc()
	} else {
		s.backendRequests.WithLabelValues(r.name, codeLabel(code)).Inc()
	}
	r.backendTime.Observe(d.Seconds())
}

// Pushed counts n pushes queued to client sessions.
func (s *Server) Pushed(n int) {
	if s != nil && n > 0 {
		s.pushes.Add(float64(n))
	}
}

// Kicked counts n sessions kicked with reason.
func (s *Server) Kicked(reason string, n int) {
	if s == nil || n <= 0 {
		return
	}
	c, ok := s.kicks[reason]
	if !ok {
		c = s.otherKicks
	}
	c.Add(float64(n))
}

// ClusterPush counts one push request received from another server.
func (s *Server) ClusterPush() {
	if s != nil {
		s.clusterPushes.Inc()
	}
}

// codeLabel bounds the code label: response codes are the game's to
// choose, so anything outside 100..999 is one value.
func codeLabel(code int) string {
	if code < 100 || code > 999 {
		return "other"
	}
	return strconv.Itoa(code)
}

// Registry is the server's registry, for tests and for games that add
// their own collectors.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Handler serves the registry in Prometheus's text (or negotiated) format.
func (s *Server) Handler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg, ErrorHandling: promhttp.ContinueOnError})
}

// Serve serves /metrics on ln until ctx ends, then shuts the HTTP server
// down (bounded) and returns nil; it returns the listener's error if
// serving fails first.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return ServeHTTP(ctx, ln, s.Handler())
}

// ServeHTTP serves h at /metrics on ln until ctx ends; see Server.Serve.
func ServeHTTP(ctx context.Context, ln net.Listener, h http.Handler) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := hs.Shutdown(shut); err != nil {
		hs.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Wrap returns h counting every request and notify it serves (h itself on
// a nil *Server): this is how
// a frontend counts each client request once (wrap the connector's
// handler, which sees every request the frontend answers, local or
// forwarded).
func (s *Server) Wrap(h handler.Func) handler.Func {
	if s == nil {
		return h
	}
	return func(ctx context.Context, r handler.Request) ([]byte, error) {
		if r.Notify {
			s.Notify(r.Route)
			return h(ctx, r)
		}
		start := time.Now()
		body, err := h(ctx, r)
		s.Request(r.Route, Code(err), time.Since(start))
		return body, err
	}
}

// WrapAsync is Wrap for a connector's AsyncHandler: a message it takes is
// counted when its done is called.
func (s *Server) WrapAsync(h handler.AsyncFunc) handler.AsyncFunc {
	if s == nil {
		return h
	}
	return func(ctx context.Context, r handler.Request, done func([]byte, error)) bool {
		if r.Notify {
			taken := h(ctx, r, done)
			if taken {
				s.Notify(r.Route)
			}
			return taken
		}
		start := time.Now()
		return h(ctx, r, func(body []byte, err error) {
			s.Request(r.Route, Code(err), time.Since(start))
			done(body, err)
		})
	}
}

// Code is the response code a client gets for a handler's error: 200 for
// none, an *handler.Error's own code, else 500 (handler.ErrorBody's rule).
func Code(err error) int {
	if err == nil {
		return handler.CodeOK
	}
	var e *handler.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return handler.CodeInternal
}
