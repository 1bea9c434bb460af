package master

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shaddock/shaddock/metrics"
)

func TestDashboardNeedsTheToken(t *testing.T) {
	m := observeMaster(t)
	m.token = "s3cret"
	mux := m.adminMux()
	do := func(method, target string, hdr map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, target, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec
	}
	for _, path := range []string{"/", "/dashboard.js", "/api/servers", "/api/events"} {
		if rec := do("GET", path, nil); rec.Code != http.StatusUnauthorized || strings.Contains(rec.Body.String(), "chat-1") {
			t.Errorf("GET %s without a token: %d %q", path, rec.Code, rec.Body.String())
		}
		if rec := do("GET", path+"?token=wrong", nil); rec.Code != http.StatusForbidden || strings.Contains(rec.Body.String(), "chat-1") {
			t.Errorf("GET %s with a wrong token: %d", path, rec.Code)
		}
		if rec := do("GET", path, map[string]string{"Cookie": tokenCookie + "=wrong"}); rec.Code != http.StatusForbidden {
			t.Errorf("GET %s with a wrong cookie: %d", path, rec.Code)
		}
	}
	if rec := do("POST", "/api/servers/chat-1/stop", nil); rec.Code != http.StatusUnauthorized {
		t.Errorf("POST without a token: %d", rec.Code)
	}

	// The token in the URL becomes a cookie, and leaves the address bar.
	rec := do("GET", "/?token=s3cret", nil)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/" {
		t.Fatalf("GET /?token=: %d %v", rec.Code, rec.Header())
	}
	cookie := rec.Header().Get("Set-Cookie")
	if !strings.Contains(cookie, tokenCookie+"=s3cret") || !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") {
		t.Fatalf("cookie %q", cookie)
	}
	auth := map[string]string{"Cookie": tokenCookie + "=s3cret"}
	if rec := do("GET", "/", auth); rec.Code != 200 || !strings.Contains(rec.Body.String(), "/dashboard.js") {
		t.Errorf("page: %d", rec.Code)
	}
	rec = do("GET", "/api/servers", auth)
	var v dashView
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || rec.Code != 200 {
		t.Fatalf("GET /api/servers: %d %v", rec.Code, err)
	}
	if v.Env != "obs" || len(v.Servers) != 4 || v.Servers[0].ID != "chat-1" || v.Servers[0].State != "stopped" || v.Servers[2].Group != "a" {
		t.Errorf("view: %+v", v)
	}
	// Another site's form cannot stop a server, even with the cookie.
	if rec := do("POST", "/api/servers/chat-1/stop", map[string]string{"Cookie": tokenCookie + "=s3cret", "Origin": "http://evil.example"}); rec.Code != http.StatusForbidden {
		t.Errorf("cross-origin POST: %d", rec.Code)
	}
	// /metrics and /sd stay open to Prometheus.
	for _, path := range []string{"/metrics", "/sd"} {
		if rec := do("GET", path, nil); rec.Code != 200 {
			t.Errorf("GET %s: %d", path, rec.Code)
		}
	}
}

func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	for _, c := range []struct {
		buckets []bucket
		want    float64
	}{
		{[]bucket{{0.001, 0}, {0.01, 100}, {inf, 100}}, 0.001 + 0.009*0.99},
		{[]bucket{{0.001, 50}, {0.01, 50}, {0.1, 100}, {inf, 100}}, 0.01 + 0.09*(99-50)/50},
		{[]bucket{{0.001, 0}, {0.01, 0}, {inf, 10}}, 0.01}, // beyond the last finite bound
		{[]bucket{{0.001, 0}, {inf, 0}}, math.NaN()},
		{nil, math.NaN()},
	} {
		got := quantile(0.99, c.buckets)
		if math.IsNaN(c.want) != math.IsNaN(got) || !math.IsNaN(got) && math.Abs(got-c.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", c.buckets, got, c.want)
		}
	}
}

// The dashboard reads what metrics.Server writes: rate and p99 between
// two scrapes, and a restarted server's counters from zero.
func TestSampleFromServerMetrics(t *testing.T) {
	ms := metrics.New(metrics.Config{ID: "c", Type: "connector", Routes: []string{"chat.chatHandler.send"}})
	scrape := func(at time.Time) metricsSample {
		rec := httptest.NewRecorder()
		ms.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		s, err := parseSample(rec.Body, at)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t0 := time.Now()
	a := scrape(t0)
	for range 98 {
		ms.Request("chat.chatHandler.send", 200, 2*time.Millisecond)
	}
	ms.Request("chat.chatHandler.send", 500, 2*time.Second)
	ms.Handled("chat.chatHandler.send", 200, 2*time.Millisecond)
	b := scrape(t0.Add(2 * time.Second))
	rate, p99, ok := between(a, b)
	if !ok || rate != 50 {
		t.Errorf("rate = %v (%v), want 50/s", rate, ok)
	}
	if p99 < 0.001 || p99 > 2.5 {
		t.Errorf("p99 = %v", p99)
	}
	if _, _, ok := between(b, a); ok {
		t.Error("a backwards interval gave figures")
	}
	if rate, _, ok := between(b, metricsSample{at: b.at.Add(time.Second), requests: 3}); !ok || rate != 3 {
		t.Errorf("after a restart: rate %v (%v), want 3/s", rate, ok)
	}
}

func TestDashboardURL(t *testing.T) {
	m := observeMaster(t)
	env := *m.env
	paths := Paths{RunDir: t.TempDir()}
	noAdmin := env
	noAdmin.Master.AdminPort = 0
	if _, err := DashboardURL(&noAdmin, paths); err == nil || !strings.Contains(err.Error(), "adminPort") {
		t.Errorf("without adminPort: %v", err)
	}
	if _, err := DashboardURL(&env, paths); !errors.Is(err, ErrNotRunning) {
		t.Errorf("without a master: %v", err)
	}
	// A live master: its pid file locked, its token written.
	f, err := lockFile(paths.PidFile(env.Name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := writeFileAtomic(paths.TokenFile(env.Name), []byte("tok/en+1\n")); err != nil {
		t.Fatal(err)
	}
	u, err := DashboardURL(&env, paths)
	if err != nil || u != "http://127.0.0.1:3006/?token=tok%2Fen%2B1" {
		t.Errorf("URL %q, %v", u, err)
	}
	env.Master.AdminHost = "0.0.0.0" // listening everywhere: the master's host reaches it
	if u, err := DashboardURL(&env, paths); err != nil || !strings.HasPrefix(u, "http://127.0.0.1:3006/") {
		t.Errorf("URL %q, %v", u, err)
	}
}
