package master

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/proto/masterpb"
)

// The dashboard: a page on the admin HTTP port listing every server, live
// (server-sent events), with restart and stop. It needs the admin token,
// given once as ?token= (the URL `master dashboard` prints), then kept in
// an HttpOnly, SameSite=Strict cookie; without it the page and its data
// answer 401, with a wrong one 403.

//go:embed dashboard
var dashboardFiles embed.FS

const (
	tokenCookie = "shaddock_token"
	// liveEvery is how often the live stream sends the view without a
	// change; a change (a state, a registration) is sent at once.
	liveEvery = 2 * time.Second
	// liveMinGap bounds the stream's rate when the cluster changes often.
	liveMinGap = 250 * time.Millisecond
	// actionTimeout bounds a restart or stop from the page.
	actionTimeout = 2 * time.Minute
)

// dashboardRoutes adds the dashboard's routes, each behind the token.
func (m *Master) dashboardRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", m.authed(m.servePage))
	mux.HandleFunc("GET /dashboard.js", m.authed(m.serveFile("dashboard/dashboard.js", "text/javascript; charset=utf-8")))
	mux.HandleFunc("GET /api/servers", m.authed(m.serveView))
	mux.HandleFunc("GET /api/events", m.authed(m.serveEvents))
	mux.HandleFunc("POST /api/servers/{id}/{action}", m.authed(m.serveAction))
}

// authed runs h only for a request carrying the admin token, in the
// cookie or as ?token=; a token in the URL of the page is moved to the
// cookie and out of the address bar.
func (m *Master) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		given, fromURL := r.URL.Query().Get("token"), true
		if given == "" {
			fromURL = false
			if c, err := r.Cookie(tokenCookie); err == nil {
				given = c.Value
			}
		}
		switch {
		case given == "":
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "401 unauthorized: open the URL `master dashboard` prints (it carries ?token=)", http.StatusUnauthorized)
			return
		case subtle.ConstantTimeCompare([]byte(given), []byte(m.token)) != 1:
			m.log.Warn("dashboard: wrong token", "remote", r.RemoteAddr, "path", r.URL.Path)
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "403 forbidden: wrong or outdated token (a new master makes a new one): run `master dashboard` again", http.StatusForbidden)
			return
		}
		if r.Method == http.MethodPost && !sameOrigin(r) {
			http.Error(w, "403 forbidden: cross-origin request", http.StatusForbidden)
			return
		}
		if fromURL {
			http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: m.token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			if r.URL.Path == "/" {
				http.Redirect(w, r, "/", http.StatusSeeOther)
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r)
	}
}

// sameOrigin reports whether a state-changing request comes from the
// dashboard's own page (the SameSite cookie already keeps other sites'
// requests out; this also covers browsers that ignore it).
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return r.Header.Get("Sec-Fetch-Site") == "" || r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

func (m *Master) servePage(w http.ResponseWriter, r *http.Request) {
	m.serveFile("dashboard/index.html", "text/html; charset=utf-8")(w, r)
}

func (m *Master) serveFile(name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := dashboardFiles.ReadFile(name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.Write(b)
	}
}

// dashServer is one server's row on the dashboard.
type dashServer struct {
	ID       string   `json:"id"`
	Type     string   `json:"type"`
	Host     string   `json:"host"`
	Port     int32    `json:"port"`
	Client   string   `json:"client,omitempty"`
	Group    string   `json:"group"`
	State    string   `json:"state"`
	Reason   string   `json:"reason,omitempty"`
	PID      int32    `json:"pid,omitempty"`
	Sessions int32    `json:"sessions"`
	Build    string   `json:"build,omitempty"`
	UptimeMs int64    `json:"uptimeMs,omitempty"`
	Restarts int32    `json:"restarts"`
	Rate     *float64 `json:"rate,omitempty"`  // requests/s; absent without metrics
	P99Ms    *float64 `json:"p99Ms,omitempty"` // absent without metrics or requests
}

// dashView is what the page shows.
type dashView struct {
	Env       string       `json:"env"`
	Master    string       `json:"master"`
	MasterPID int          `json:"masterPid"`
	Update    string       `json:"update,omitempty"`
	At        int64        `json:"at"` // unix ms
	Servers   []dashServer `json:"servers"`
}

// view builds the dashboard's view of the cluster, and returns the
// channel closed at the next change.
func (m *Master) view() (dashView, <-chan struct{}) {
	now := time.Now()
	m.mu.Lock()
	v := dashView{Env: m.env.Name, Master: m.env.Master.ID, MasterPID: os.Getpid(), Update: m.updateNote, At: now.UnixMilli()}
	for _, id := range m.idsLocked() {
		st := m.statusLocked(m.servers[id], now)
		i := st.GetInfo()
		row := dashServer{ID: i.GetId(), Type: i.GetType(), Host: i.GetHost(), Port: i.GetPort(), Group: i.GetGroup(),
			State: stateName(st.GetState()), Reason: oneLine(st.GetReason()), PID: i.GetPid(), Sessions: st.GetConnections(),
			Build: i.GetBuild(), UptimeMs: st.GetUptimeMs(), Restarts: st.GetRestarts()}
		if i.GetClientPort() > 0 {
			row.Client = fmt.Sprintf("%s:%d", i.GetClientHost(), i.GetClientPort())
		}
		v.Servers = append(v.Servers, row)
	}
	changed := m.changed
	m.mu.Unlock()
	for i := range v.Servers {
		s := &v.Servers[i]
		if s.State != "running" && s.State != "draining" && s.State != "stopping" {
			continue
		}
		if st, ok := m.stats.get(s.ID); ok {
			rate := math.Round(st.rate*10) / 10
			s.Rate = &rate
			if !math.IsNaN(st.p99) {
				p99 := math.Round(st.p99*1e5) / 100 // ms, two decimals
				s.P99Ms = &p99
			}
		}
	}
	return v, changed
}

func (m *Master) serveView(w http.ResponseWriter, r *http.Request) {
	v, _ := m.view()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// serveEvents streams the view as server-sent events: at once, at every
// change (at most every liveMinGap), and every liveEvery, until the page
// or the master goes away.
func (m *Master) serveEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	tick := time.NewTicker(liveEvery)
	defer tick.Stop()
	ctx := r.Context()
	for {
		v, changed := m.view()
		b, err := json.Marshal(v)
		if err != nil {
			return
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return
		}
		fl.Flush()
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
		select { // coalesce a burst of changes
		case <-ctx.Done():
			return
		case <-time.After(liveMinGap):
		}
	}
}

// serveAction restarts or stops one server, as `master restart|stop --id`
// does, and answers with the command's lines once it is done (bounded).
func (m *Master) serveAction(w http.ResponseWriter, r *http.Request) {
	id, action := r.PathValue("id"), r.PathValue("action")
	sel := &masterpb.StopRequest{Select: &masterpb.Selector{Ids: []string{id}}, Reason: "asked from the dashboard"}
	ctx, cancel := context.WithTimeout(r.Context(), actionTimeout)
	defer cancel()
	st := &lineStream{ctx: ctx}
	a := adminService{m: m}
	var err error
	switch action {
	case "restart":
		m.log.Info("dashboard: restart", "server", id, "remote", r.RemoteAddr)
		err = a.Restart(sel, st)
	case "stop":
		m.log.Info("dashboard: stop", "server", id, "remote", r.RemoteAddr)
		err = a.Stop(sel, st)
	default:
		http.Error(w, "unknown action "+action+": restart or stop", http.StatusNotFound)
		return
	}
	rep := struct {
		OK    bool     `json:"ok"`
		Lines []string `json:"lines"`
		Error string   `json:"error,omitempty"`
	}{OK: err == nil && !st.failed, Lines: st.lines}
	if err != nil {
		rep.Error = err.Error()
	}
	w.Header().Set("Content-Type", "application/json")
	if !rep.OK {
		w.WriteHeader(http.StatusConflict)
	}
	json.NewEncoder(w).Encode(rep)
}

// lineStream collects an admin command's progress for the page: the
// command runs as the CLI's would, with this in place of its gRPC stream.
type lineStream struct {
	grpc.ServerStream // not used by the commands beyond Send and Context
	ctx               context.Context
	lines             []string
	failed            bool
}

func (s *lineStream) Send(p *masterpb.Progress) error {
	s.lines = append(s.lines, strings.TrimSpace(p.GetMessage()))
	if p.GetError() {
		s.failed = true
	}
	return nil
}

func (s *lineStream) Context() context.Context { return s.ctx }

// DashboardURL is the dashboard's address with the running master's
// token, as `master dashboard` prints it. It fails with ErrNotRunning
// (wrapped) if no master runs for env, and when env has no adminPort.
func DashboardURL(env *config.Env, paths Paths) (string, error) {
	mc := env.Master
	if mc.AdminPort == 0 {
		return "", fmt.Errorf("env %s has no dashboard: set adminPort in [%s.master] (and restart the master)", env.Name, env.Name)
	}
	if _, err := paths.MasterPID(env.Name); err != nil {
		return "", err
	}
	token, err := readToken(paths.TokenFile(env.Name))
	if err != nil {
		return "", fmt.Errorf("dashboard of env %s: %w", env.Name, err)
	}
	host := mc.AdminHost
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = mc.Host // listening everywhere: the master's own address reaches it
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(mc.AdminPort)) + "/?token=" + url.QueryEscape(token), nil
}
