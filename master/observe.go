package master

import (
	"encoding/json"
	"net"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shaddock/shaddock/proto/masterpb"
)

// The master's own metrics and the Prometheus service discovery of every
// server's, served on adminHost:adminPort without the admin token: they
// name servers and counts, which any scrape of the servers shows anyway,
// and Prometheus has no way to hold a token that changes at every master
// start.

// publishedStates are the states shaddock_servers reports for every type,
// zeros included, so a query sees a state emptying rather than vanishing.
var publishedStates = []masterpb.ServerState{
	masterpb.ServerState_STARTING, masterpb.ServerState_RUNNING, masterpb.ServerState_DRAINING,
	masterpb.ServerState_STOPPING, masterpb.ServerState_STOPPED, masterpb.ServerState_LOST,
	masterpb.ServerState_FAILED,
}

// serversCollector reads the master's view at scrape time: there is no
// second copy of the state to keep in step.
type serversCollector struct {
	m                        *Master
	servers, state, restarts *prometheus.Desc
}

func newServersCollector(m *Master) *serversCollector {
	return &serversCollector{
		m: m,
		servers: prometheus.NewDesc("shaddock_servers",
			"Servers the master knows, by type and state (starting, running, draining, stopping, stopped, lost, failed).",
			[]string{"type", "state"}, nil),
		state: prometheus.NewDesc("shaddock_server_state",
			"Always 1: each server's state as `master list` shows it.",
			[]string{"id", "type", "state"}, nil),
		restarts: prometheus.NewDesc("shaddock_server_restarts",
			"Automatic restarts of each server since this master started supervising it.",
			[]string{"id", "type"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *serversCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.servers
	ch <- c.state
	ch <- c.restarts
}

// Collect implements prometheus.Collector.
func (c *serversCollector) Collect(ch chan<- prometheus.Metric) {
	type row struct {
		id, typ  string
		state    masterpb.ServerState
		restarts int32
	}
	m := c.m
	m.mu.Lock()
	rows := make([]row, 0, len(m.servers))
	for _, id := range m.idsLocked() {
		srv := m.servers[id]
		typ, _, _ := srv.typeGroup()
		rows = append(rows, row{id: id, typ: typ, state: srv.state, restarts: srv.restarts})
	}
	m.mu.Unlock()

	counts := map[string]map[masterpb.ServerState]int{}
	for _, r := range rows {
		if counts[r.typ] == nil {
			counts[r.typ] = map[masterpb.ServerState]int{}
		}
		counts[r.typ][r.state]++
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, 1, r.id, r.typ, stateName(r.state))
		ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(r.restarts), r.id, r.typ)
	}
	for typ, byState := range counts {
		for _, st := range publishedStates {
			ch <- prometheus.MustNewConstMetric(c.servers, prometheus.GaugeValue, float64(byState[st]), typ, stateName(st))
		}
	}
}

// metricsHandler serves the master's registry: its servers' states, and
// its own Go and process collectors.
func (m *Master) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newServersCollector(m), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorHandling: promhttp.ContinueOnError})
}

// sdGroup is one entry of Prometheus's HTTP service discovery:
// https://prometheus.io/docs/prometheus/latest/http_sd/
type sdGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// sdTargets lists the metrics endpoint of every configured server with a
// metricsPort, whatever its state (a server that is down then shows as
// up == 0), and the master's own. Labels: server (the id) and server_type
// on every series scraped; the group and environment as __meta_ labels for
// relabelling.
func (m *Master) sdTargets() []sdGroup {
	m.mu.Lock()
	var out []sdGroup
	for _, id := range m.idsLocked() {
		srv := m.servers[id]
		if !srv.configured || srv.cfg.MetricsPort == 0 {
			continue
		}
		c := srv.cfg
		out = append(out, sdGroup{
			Targets: []string{net.JoinHostPort(c.Host, strconv.Itoa(c.MetricsPort))},
			Labels: map[string]string{"server": c.ID, "server_type": c.Type,
				"__meta_shaddock_group": c.Group, "__meta_shaddock_env": m.env.Name},
		})
	}
	m.mu.Unlock()
	if mc := m.env.Master; mc.AdminPort != 0 {
		out = append(out, sdGroup{
			Targets: []string{net.JoinHostPort(mc.AdminHost, strconv.Itoa(mc.AdminPort))},
			Labels:  map[string]string{"server": mc.ID, "server_type": "master", "__meta_shaddock_env": m.env.Name},
		})
	}
	if out == nil {
		out = []sdGroup{} // "[]", which Prometheus wants, not "null"
	}
	return out
}

// serveSD answers Prometheus's HTTP service discovery.
func (m *Master) serveSD(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(m.sdTargets()); err != nil {
		m.log.Debug("service discovery answer not sent", "err", err)
	}
}
