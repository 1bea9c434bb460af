package master

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/proto/masterpb"
)

const observeTOML = `[obs]
binary = "bin/game"
[obs.master]
id = "master-1"
host = "127.0.0.1"
port = 3005
adminPort = 3006
[[obs.connector]]
id = "connector"
host = "127.0.0.1"
port = "3150++"
clientPort = "3050++"
metricsPort = "9150++"
frontend = true
clusterCount = 2
group = "a"
[[obs.chat]]
id = "chat-1"
host = "127.0.0.1"
port = 6050
metricsPort = 9200
[[obs.chat]]
id = "chat-2"
host = "127.0.0.1"
port = 6051
`

func observeMaster(t *testing.T) *Master {
	t.Helper()
	env, err := config.Parse("servers.toml", []byte(observeTOML), "obs")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Env: env, ConfigPath: "/nonexistent/servers.toml"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestServiceDiscovery(t *testing.T) {
	m := observeMaster(t)
	rec := httptest.NewRecorder()
	m.adminMux().ServeHTTP(rec, httptest.NewRequest("GET", "/sd", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /sd: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var got []sdGroup
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := []struct{ target, server, typ string }{
		{"127.0.0.1:9200", "chat-1", "chat"},
		{"127.0.0.1:9150", "connector-0", "connector"},
		{"127.0.0.1:9151", "connector-1", "connector"},
		{"127.0.0.1:3006", "master-1", "master"},
	}
	if len(got) != len(want) {
		t.Fatalf("targets: %+v", got)
	}
	for i, w := range want {
		g := got[i]
		if len(g.Targets) != 1 || g.Targets[0] != w.target || g.Labels["server"] != w.server || g.Labels["server_type"] != w.typ {
			t.Errorf("target %d: %+v, want %+v", i, g, w)
		}
	}
	if got[1].Labels["__meta_shaddock_group"] != "a" || got[1].Labels["__meta_shaddock_env"] != "obs" {
		t.Errorf("meta labels: %+v", got[1].Labels)
	}
}

func TestMasterMetrics(t *testing.T) {
	m := observeMaster(t)
	scrape := func() string {
		rec := httptest.NewRecorder()
		m.adminMux().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		b, _ := io.ReadAll(rec.Body)
		if rec.Code != 200 {
			t.Fatalf("GET /metrics: %d %s", rec.Code, b)
		}
		return string(b)
	}
	text := scrape()
	for _, want := range []string{
		`shaddock_servers{state="stopped",type="chat"} 2`,
		`shaddock_servers{state="running",type="chat"} 0`,
		`shaddock_servers{state="stopped",type="connector"} 2`,
		`shaddock_server_state{id="chat-1",state="stopped",type="chat"} 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
	m.mu.Lock()
	m.servers["chat-1"].state = masterpb.ServerState_RUNNING
	m.servers["chat-2"].state = masterpb.ServerState_LOST
	m.mu.Unlock()
	text = scrape()
	for _, want := range []string{
		`shaddock_servers{state="running",type="chat"} 1`,
		`shaddock_servers{state="lost",type="chat"} 1`,
		`shaddock_servers{state="stopped",type="chat"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
}
