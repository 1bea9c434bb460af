package master

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shaddock/shaddock/proto/masterpb"
)

// The dashboard's request rate and p99 per server come from the servers'
// own /metrics, scraped by the master every statsEvery: the same numbers
// Prometheus would compute, without asking the operator to run one.

const (
	statsEvery    = 2 * time.Second
	statsTimeout  = time.Second // one server's scrape; a dead host costs no more
	statsParallel = 8           // scrapes in flight at once
)

// bucket is one cumulative histogram bucket: count observations ≤ le.
type bucket struct{ le, count float64 }

// metricsSample is what one scrape of a server gives the dashboard: the
// requests it answered (as frontend) or handled (as backend), all routes,
// and their duration histogram merged over routes.
type metricsSample struct {
	at       time.Time
	requests float64
	buckets  []bucket // sorted by le, +Inf last
}

// parseSample reads a server's /metrics text.
func parseSample(r io.Reader, at time.Time) (metricsSample, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return metricsSample{}, err
	}
	s := metricsSample{at: at}
	for _, name := range []string{"shaddock_requests_total", "shaddock_backend_requests_total"} {
		for _, m := range fams[name].GetMetric() {
			s.requests += m.GetCounter().GetValue()
		}
	}
	byLE := map[float64]float64{}
	for _, name := range []string{"shaddock_request_duration_seconds", "shaddock_backend_request_duration_seconds"} {
		for _, m := range fams[name].GetMetric() {
			addHistogram(byLE, m.GetHistogram())
		}
	}
	for le, n := range byLE {
		s.buckets = append(s.buckets, bucket{le, n})
	}
	slices.SortFunc(s.buckets, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	return s, nil
}

func addHistogram(byLE map[float64]float64, h *dto.Histogram) {
	if h == nil {
		return
	}
	for _, b := range h.GetBucket() {
		// The text format's +Inf bucket is the sample count, added below
		// (a parser may or may not list it as a bucket).
		if le := b.GetUpperBound(); !math.IsInf(le, 1) {
			byLE[le] += float64(b.GetCumulativeCount())
		}
	}
	byLE[math.Inf(1)] += float64(h.GetSampleCount())
}

// between computes the request rate (per second) and the p99 (seconds)
// from prev to cur; ok is false without a usable interval, p99 NaN
// without requests in it. A counter that went down is a restarted server:
// cur counts from zero.
func between(prev, cur metricsSample) (rate, p99 float64, ok bool) {
	dt := cur.at.Sub(prev.at).Seconds()
	if dt <= 0 {
		return 0, math.NaN(), false
	}
	reset := cur.requests < prev.requests
	d := cur.requests - prev.requests
	if reset {
		d = cur.requests
	}
	deltas := make([]bucket, len(cur.buckets))
	for i, b := range cur.buckets {
		deltas[i] = b
		if !reset {
			for _, pb := range prev.buckets {
				if pb.le == b.le {
					deltas[i].count = max(0, b.count-pb.count)
					break
				}
			}
		}
	}
	return d / dt, quantile(0.99, deltas), true
}

// quantile estimates the q-quantile of cumulative buckets by linear
// interpolation within the bucket it falls in, as PromQL's
// histogram_quantile does; NaN without observations.
func quantile(q float64, buckets []bucket) float64 {
	if len(buckets) == 0 {
		return math.NaN()
	}
	total := buckets[len(buckets)-1].count
	if total <= 0 {
		return math.NaN()
	}
	rank := q * total
	lowerLE, lowerCount := 0.0, 0.0
	for _, b := range buckets {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				return lowerLE // beyond the largest finite bound: that bound
			}
			if b.count == lowerCount {
				return b.le
			}
			return lowerLE + (b.le-lowerLE)*(rank-lowerCount)/(b.count-lowerCount)
		}
		lowerLE, lowerCount = b.le, b.count
	}
	return lowerLE
}

// serverStats is one server's figures on the dashboard.
type serverStats struct {
	rate, p99 float64 // per second, seconds; p99 NaN without requests
	at        time.Time
}

// dashStats keeps the last scrape of every server and the figures
// between the last two.
type dashStats struct {
	client *http.Client

	mu    sync.Mutex
	last  map[string]metricsSample
	stats map[string]serverStats
}

func newDashStats() *dashStats {
	return &dashStats{
		client: &http.Client{Timeout: statsTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: 3 * statsEvery}},
		last:   map[string]metricsSample{},
		stats:  map[string]serverStats{},
	}
}

// get returns a server's figures, if fresh.
func (d *dashStats) get(id string) (serverStats, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.stats[id]
	if !ok || time.Since(s.at) > 3*statsEvery {
		return serverStats{}, false
	}
	return s, true
}

// statsTarget is a server to scrape.
type statsTarget struct{ id, addr string }

// runStats scrapes every running server with a metricsPort every
// statsEvery until ctx ends.
func (m *Master) runStats(ctx context.Context) {
	t := time.NewTicker(statsEvery)
	defer t.Stop()
	defer m.stats.client.CloseIdleConnections()
	for {
		m.scrapeAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// scrapeAll scrapes the running servers once, statsParallel at a time,
// and returns when every scrape is over (each bounded by statsTimeout).
func (m *Master) scrapeAll(ctx context.Context) {
	var targets []statsTarget
	m.mu.Lock()
	for _, id := range m.idsLocked() {
		srv := m.servers[id]
		switch srv.state {
		case masterpb.ServerState_RUNNING, masterpb.ServerState_DRAINING, masterpb.ServerState_STOPPING:
		default:
			continue
		}
		if srv.configured && srv.cfg.MetricsPort != 0 {
			targets = append(targets, statsTarget{id, net.JoinHostPort(srv.cfg.Host, strconv.Itoa(srv.cfg.MetricsPort))})
		}
	}
	m.mu.Unlock()
	sem := make(chan struct{}, statsParallel)
	var wg sync.WaitGroup
	for _, tg := range targets {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			m.stats.scrape(ctx, tg)
		}()
	}
	wg.Wait()
}

// scrape fetches one server's metrics and updates its figures.
func (d *dashStats) scrape(ctx context.Context, tg statsTarget) {
	s, err := d.fetch(ctx, tg.addr)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		delete(d.last, tg.id)
		return
	}
	if prev, ok := d.last[tg.id]; ok {
		if rate, p99, ok := between(prev, s); ok {
			d.stats[tg.id] = serverStats{rate: rate, p99: p99, at: s.at}
		}
	}
	d.last[tg.id] = s
}

func (d *dashStats) fetch(ctx context.Context, addr string) (metricsSample, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/metrics", nil)
	if err != nil {
		return metricsSample{}, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := d.client.Do(req)
	if err != nil {
		return metricsSample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return metricsSample{}, fmt.Errorf("GET %s/metrics: %s", addr, resp.Status)
	}
	return parseSample(io.LimitReader(resp.Body, 16<<20), time.Now())
}
