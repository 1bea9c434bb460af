package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// prometheusPath is Debian's Prometheus (package prometheus).
const prometheusPath = "/usr/bin/prometheus"

// Prometheus is a real Prometheus server started by a test, with its own
// config and storage, on a free loopback port.
type Prometheus struct {
	t    testing.TB
	Addr string
	proc *Proc
}

// StartPrometheus runs Prometheus scraping every second whatever the
// master at adminAddr lists in its HTTP service discovery (/sd): the
// only address it is given, as in the README's scrape config.
func StartPrometheus(t testing.TB, adminAddr string) *Prometheus {
	t.Helper()
	if _, err := os.Stat(prometheusPath); err != nil {
		t.Fatalf("%s is missing (%v): run .ci/run or: apt-get install -y prometheus", prometheusPath, err)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: shaddock
    http_sd_configs:
      - url: http://%s/sd
        refresh_interval: 1s
`, adminAddr)
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Prometheus{t: t, Addr: freeAddr(t)}
	p.proc = startPath(t, "prometheus", prometheusPath,
		"--config.file="+path, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.Addr, "--log.level=warn")
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + p.Addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if p.proc.Exited() || time.Now().After(deadline) {
			t.Fatalf("prometheus not ready: %v\n%s", err, p.proc.Log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sample is one series of an instant query's answer.
type sample struct {
	Labels map[string]string
	Value  float64
}

// Query runs an instant query.
func (p *Prometheus) Query(q string) ([]sample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+p.Addr+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %s: %w", q, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, body.Error)
	}
	var out []sample
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v", q, r.Value[1])
		}
		out = append(out, sample{Labels: r.Metric, Value: v})
	}
	return out, nil
}

// Scalar runs a query whose answer is one series and returns its value.
func (p *Prometheus) Scalar(q string) (float64, error) {
	r, err := p.Query(q)
	if err != nil {
		return 0, err
	}
	if len(r) != 1 {
		return 0, fmt.Errorf("query %s: %d series, want 1: %+v", q, len(r), r)
	}
	return r[0].Value, nil
}

// chatLoad is users sending chat messages at a steady pace, each counting
// the sends answered.
type chatLoad struct {
	sent   atomic.Int64
	failed atomic.Int64
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

func startChatLoad(ctx context.Context, users []*chatUser, every time.Duration) *chatLoad {
	ctx, cancel := context.WithCancel(ctx)
	l := &chatLoad{stop: cancel}
	for i, u := range users {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			// Spread the users over the period so the load is even.
			select {
			case <-time.After(every * time.Duration(i) / time.Duration(len(users))):
			case <-ctx.Done():
				return
			}
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if err := u.send(ctx, "hello", "*"); err != nil {
					if ctx.Err() != nil {
						return
					}
					l.failed.Add(1)
					continue
				}
				l.sent.Add(1)
			}
		}()
	}
	return l
}

func (l *chatLoad) close() { l.stop(); l.wg.Wait() }

// TestPrometheusScrapesCluster is issue 11's acceptance with a real
// Prometheus, told only the master's address: it scrapes the chat demo
// under load; the sessions it sees are the connected users, the send rate
// it computes is the load's, the histogram gives a p99, every server is up,
// and a `master kill` shows in shaddock_servers.
func TestPrometheusScrapesCluster(t *testing.T) {
	cl := StartChatClusterWith(t, ClusterOptions{Metrics: true, LogFormat: "json"})
	prom := StartPrometheus(t, cl.AdminAddr)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const nUsers, nRooms = 20, 4
	users := make([]*chatUser, nUsers)
	for i := range users {
		users[i], _ = login(t, ctx, cl, fmt.Sprintf("user-%d", i), fmt.Sprintf("room-%d", i%nRooms), i%2 == 0)
	}
	load := startChatLoad(ctx, users, 200*time.Millisecond) // 100 sends/s in all
	defer load.close()

	// Every server and the master, found through the master only, are up.
	servers := []string{"gate-server-1", "connector-server-1", "connector-server-2", "chat-server-1", "chat-server-2", "master-server-1"}
	waitProm(t, 60*time.Second, "every target up", func() error {
		r, err := prom.Query(`up{job="shaddock"}`)
		if err != nil {
			return err
		}
		up := map[string]float64{}
		for _, s := range r {
			up[s.Labels["server"]] = s.Value
		}
		for _, id := range servers {
			if up[id] != 1 {
				return fmt.Errorf("up: %v", up)
			}
		}
		return nil
	})

	// Let the load run for more than the rate window, then compare
	// Prometheus's rate with the load's over the last 10 s. On this shared
	// machine a stall can skew one 5 s window: up to 3 tries, 2 s apart.
	time.Sleep(6 * time.Second)
	var rate, loadRate float64
	for try := 1; ; try++ {
		n0, t0 := load.sent.Load(), time.Now()
		time.Sleep(10 * time.Second)
		loadRate = float64(load.sent.Load()-n0) / time.Since(t0).Seconds()
		if loadRate < 50 {
			t.Fatalf("the load ran at %.1f sends/s, not near 100 (failed %d): the machine is too busy to judge", loadRate, load.failed.Load())
		}
		var err error
		if rate, err = prom.Scalar(`sum(rate(shaddock_requests_total{route="chat.chatHandler.send"}[5s]))`); err != nil {
			t.Fatal(err)
		}
		t.Logf("send rate: Prometheus %.1f/s, load %.1f/s (%d failed)", rate, loadRate, load.failed.Load())
		if math.Abs(rate-loadRate) <= 0.2*loadRate {
			break
		}
		if try == 3 {
			t.Fatalf("Prometheus's send rate %.1f/s is not within 20%% of the load's %.1f/s", rate, loadRate)
		}
	}
	sessions, err := prom.Scalar(`sum(shaddock_sessions)`)
	if err != nil || sessions != nUsers {
		t.Errorf("sum(shaddock_sessions) = %v (%v), want %d", sessions, err, nUsers)
	}
	p99, err := prom.Scalar(`histogram_quantile(0.99, sum by (le) (rate(shaddock_request_duration_seconds_bucket{route="chat.chatHandler.send"}[5s])))`)
	if err != nil || math.IsNaN(p99) || p99 <= 0 || p99 > 10 {
		t.Errorf("p99 of chat.chatHandler.send = %v (%v)", p99, err)
	} else {
		t.Logf("p99 of chat.chatHandler.send: %.2f ms", p99*1000)
	}
	if pushes, err := prom.Scalar(`sum(rate(shaddock_pushes_total[5s]))`); err != nil || pushes < rate {
		t.Errorf("push rate %v (%v): each send reaches its room (5 users)", pushes, err)
	}
	if v, err := prom.Scalar(`shaddock_servers{type="chat",state="running"}`); err != nil || v != 2 {
		t.Errorf(`shaddock_servers{type="chat",state="running"} = %v (%v), want 2`, v, err)
	}
	load.close()

	// A kill shows in the master's series: chat-server-2 leaves running.
	if out, err := cl.Master(30*time.Second, "kill", "--id", "chat-server-2"); err != nil {
		t.Fatalf("master kill: %v\n%s", err, out)
	}
	waitProm(t, 20*time.Second, "chat-server-2 killed", func() error {
		running, err := prom.Scalar(`shaddock_servers{type="chat",state="running"}`)
		if err != nil {
			return err
		}
		st, err := prom.Query(`shaddock_server_state{id="chat-server-2"}`)
		if err != nil {
			return err
		}
		if running != 1 || len(st) != 1 || st[0].Labels["state"] == "running" {
			return fmt.Errorf("running chat servers %v, chat-server-2 %+v", running, st)
		}
		return nil
	})
	waitProm(t, 20*time.Second, "chat-server-2 down", func() error {
		v, err := prom.Scalar(`up{server="chat-server-2"}`)
		if err == nil && v != 0 {
			err = fmt.Errorf("up = %v", v)
		}
		return err
	})

	// logFormat = "json": every line of every server's log is a JSON
	// object naming the server, once, and its type.
	for _, id := range servers[:5] {
		checkJSONLog(t, filepath.Join(cl.Dir, "logs", id+".log"), id, strings.Split(id, "-")[0])
	}
}

// checkJSONLog checks that every line a server wrote to its log is a
// JSON object with its id and type, each key once. The "=== " lines are the
// master's markers (started, exited), not the server's.
func checkJSONLog(t *testing.T, path, id, typ string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	n := 0
	for i, line := range lines {
		if strings.HasPrefix(line, "=== ") {
			continue
		}
		n++
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("%s:%d is not JSON: %q", path, i+1, line)
			continue
		}
		if m["server"] != id || m["type"] != typ || strings.Count(line, `"server":`) != 1 || strings.Count(line, `"type":`) != 1 {
			t.Errorf("%s:%d: want server %q and type %q, once each: %s", path, i+1, id, typ, line)
		}
	}
	if n == 0 {
		t.Errorf("%s: no line from the server", path)
	}
	t.Logf("%s: %d JSON lines", filepath.Base(path), n)
}

// waitProm polls cond every half second until it holds or timeout passes.
func waitProm(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
