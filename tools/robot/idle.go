package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shaddock/shaddock/tools/client"
)

// idleConfig is one run of the idle-capacity workload.
type idleConfig struct {
	Addr               string
	Transport          string
	Sessions           int
	ServerPid          int
	Hold               time.Duration
	ConnectConcurrency int
	ConnectTimeout     time.Duration // bound on the whole connect phase
	CloseTimeout       time.Duration // bound on closing every session
	Pids               []*watchedPid // besides the server, whose CPU and RSS are accounted
	// Rooms > 0 enters every session in a chat room (examples/chat's
	// connector.entryHandler.enter as u<i> in room-<i % Rooms>) instead of
	// the echo request; the room's onAdd pushes are counted and dropped.
	Rooms int
	// HandshakeOnly sends no request at all: sessions are handshaken only.
	HandshakeOnly bool
	Progress      io.Writer
}

// IdleResult is the outcome of an idle run (the -json output).
type IdleResult struct {
	Workload       string  `json:"workload"`
	Addr           string  `json:"addr"`
	Transport      string  `json:"transport"`
	Mode           string  `json:"mode"`            // "echo", "enter" or "handshake"
	Rooms          int     `json:"rooms,omitempty"` // with mode enter
	Sessions       int     `json:"sessions"`
	Connected      int     `json:"connected"`
	ServerPid      int     `json:"server_pid"`
	HeartbeatS     int     `json:"heartbeat_s"` // the interval the server announced
	ConnectS       float64 `json:"connect_s"`
	ConnectsPerSec float64 `json:"connects_per_s"`
	Connect        Latency `json:"connect_latency"` // dial + handshake + one request
	HoldS          float64 `json:"hold_s"`

	BaselineRSS     int64   `json:"rss_baseline_bytes"`
	ConnectedRSS    int64   `json:"rss_connected_bytes"`
	EndRSS          int64   `json:"rss_end_bytes"`
	PeakRSS         int64   `json:"rss_peak_bytes"`
	AfterCloseRSS   int64   `json:"rss_after_close_bytes"`
	BytesPerSession float64 `json:"bytes_per_session"`
	RSSSamples      []int64 `json:"rss_samples_bytes"` // one a second from the start
	RobotRSS        int64   `json:"robot_rss_bytes"`
	// Others is the RSS of the -cpu-pids processes (the chat servers, say)
	// at the baseline and at the end of the hold.
	Others []PidRSS `json:"others_rss,omitempty"`
	// Pushes is the pushes the sessions received (onAdd with mode enter).
	Pushes int64 `json:"pushes"`

	LostDuringHold int         `json:"lost_during_hold"`
	CloseS         float64     `json:"close_s"`
	CloseComplete  bool        `json:"close_complete"`
	CPU            *CPUReport  `json:"cpu,omitempty"` // over the hold
	ErrorCount     int64       `json:"error_count"`
	Errors         []ErrorKind `json:"errors"`
	Interrupted    bool        `json:"interrupted,omitempty"`
}

// PidRSS is another process's RSS over an idle run.
type PidRSS struct {
	Pid      int     `json:"pid"`
	Name     string  `json:"name"`
	Baseline int64   `json:"rss_baseline_bytes"`
	End      int64   `json:"rss_end_bytes"`
	PerSess  float64 `json:"bytes_per_session"` // (end - baseline) / connected
}

// rssSampler reads the server's RSS once a second.
type rssSampler struct {
	pid     int
	mu      sync.Mutex
	samples []int64
	last    atomic.Int64
	peak    atomic.Int64
	quit    chan struct{}
	done    chan struct{}
}

func startRSSSampler(pid int) *rssSampler {
	s := &rssSampler{pid: pid, quit: make(chan struct{}), done: make(chan struct{})}
	s.sample()
	go func() {
		defer close(s.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-s.quit:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *rssSampler) sample() int64 {
	v, err := procRSS(s.pid)
	if err != nil {
		return s.last.Load()
	}
	s.last.Store(v)
	if v > s.peak.Load() {
		s.peak.Store(v)
	}
	s.mu.Lock()
	s.samples = append(s.samples, v)
	s.mu.Unlock()
	return v
}

func (s *rssSampler) stop() []int64 {
	close(s.quit)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

// runIdle opens the sessions, holds them idle and measures the server's
// memory.
func runIdle(ctx context.Context, cfg idleConfig) (*IdleResult, error) {
	if cfg.Sessions <= 0 || cfg.ServerPid <= 0 {
		return nil, fmt.Errorf("idle: need sessions > 0 and -server-pid")
	}
	baseline, err := procRSS(cfg.ServerPid)
	if err != nil {
		return nil, fmt.Errorf("idle: server pid %d: %w", cfg.ServerPid, err)
	}
	res := &IdleResult{
		Workload: "idle", Addr: cfg.Addr, Transport: transportName(cfg.Transport), Mode: "echo",
		Sessions: cfg.Sessions, ServerPid: cfg.ServerPid, BaselineRSS: baseline,
	}
	switch {
	case cfg.Rooms > 0:
		res.Mode, res.Rooms = "enter", cfg.Rooms
	case cfg.HandshakeOnly:
		res.Mode = "handshake"
	}
	for _, p := range cfg.Pids {
		v, err := procRSS(p.Pid)
		if err != nil {
			return nil, fmt.Errorf("idle: pid %d: %w", p.Pid, err)
		}
		res.Others = append(res.Others, PidRSS{Pid: p.Pid, Name: p.Name, Baseline: v})
	}
	errs := newErrorLog()
	var connected atomic.Int64
	rss := startRSSSampler(cfg.ServerPid)
	start := time.Now()
	if cfg.Progress != nil {
		prog := startProgress(cfg.Progress, start, func(_, _ time.Duration) string {
			return fmt.Sprintf("sessions %d/%d  server RSS %s  errors %d",
				connected.Load(), cfg.Sessions, fmtBytes(rss.last.Load()), errs.total.Load())
		})
		defer prog.stop()
	}

	var hbOnce sync.Once
	var pushes atomic.Int64
	// Pushes are counted, not decoded: an idle session's client does
	// nothing else.
	onPush := func(string, []byte) { pushes.Add(1) }
	cctx, ccancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	conns, connHist := connectAll(cctx, cfg.Sessions, cfg.ConnectConcurrency, errs, &connected,
		func(ctx context.Context, i int) (*client.Client, error) {
			c, err := client.Dial(ctx, cfg.Addr, client.Options{Transport: cfg.Transport, OnPush: onPush})
			if err != nil {
				return nil, err
			}
			hbOnce.Do(func() { res.HeartbeatS = c.Handshake().Sys.Heartbeat })
			if err := idleRequest(ctx, c, &cfg, i); err != nil {
				_ = c.Close()
				return nil, err
			}
			return c, nil
		})
	ccancel()
	connectElapsed := time.Since(start)
	res.Connected = int(connected.Load())
	res.ConnectS = connectElapsed.Seconds()
	res.ConnectsPerSec = rate(float64(res.Connected), connectElapsed)
	res.Connect = summarize(connHist)
	res.ConnectedRSS = rss.sample()

	// Hold: the clients heartbeat at the server's interval, nothing else.
	meter := &cpuMeter{pids: append([]*watchedPid{{Pid: cfg.ServerPid, Name: "server"}}, cfg.Pids...)}
	meter.begin()
	holdStart := time.Now()
	if !sleepUntil(ctx, holdStart.Add(cfg.Hold)) {
		res.Interrupted = true
	}
	res.HoldS = time.Since(holdStart).Seconds()
	res.CPU = meter.end()
	res.EndRSS = rss.sample()
	for i := range res.Others {
		o := &res.Others[i]
		if v, err := procRSS(o.Pid); err == nil {
			o.End = v
		}
		if res.Connected > 0 && o.End > 0 {
			o.PerSess = float64(o.End-o.Baseline) / float64(res.Connected)
		}
	}
	res.Pushes = pushes.Load()
	for _, c := range conns {
		if c != nil && c.Err() != nil {
			res.LostDuringHold++
			errs.add(classify("idle session", c.Err()), c.Err())
		}
	}
	if res.Connected > 0 {
		res.BytesPerSession = float64(res.EndRSS-res.BaselineRSS) / float64(res.Connected)
	}
	if self, err := procRSS(os.Getpid()); err == nil {
		res.RobotRSS = self
	}

	// Close, bounded: a stuck close must not keep the robot past its bound.
	closeStart := time.Now()
	closed := make(chan struct{})
	go func() {
		closeAll(conns, func(c *client.Client) *client.Client { return c }, cfg.ConnectConcurrency)
		close(closed)
	}()
	timer := time.NewTimer(cfg.CloseTimeout)
	select {
	case <-closed:
		res.CloseComplete = true
	case <-timer.C:
		errs.add("close: not finished in time", fmt.Errorf("closing %d sessions took over %v", res.Connected, cfg.CloseTimeout))
	}
	timer.Stop()
	res.CloseS = time.Since(closeStart).Seconds()
	if res.CloseComplete {
		// Give the server a moment to notice the closes before the last sample.
		sleepUntil(ctx, time.Now().Add(time.Second))
		res.AfterCloseRSS = rss.sample()
	}
	res.RSSSamples = rss.stop()
	res.PeakRSS = rss.peak.Load()
	res.Errors = errs.list()
	res.ErrorCount = errs.total.Load()
	return res, nil
}

// idleRequest is what a session does once handshaken: the echo request,
// entering its chat room, or nothing.
func idleRequest(ctx context.Context, c *client.Client, cfg *idleConfig, i int) error {
	switch {
	case cfg.Rooms > 0:
		if _, lerr := enterRoom(ctx, c, "u"+strconv.Itoa(i), "room-"+strconv.Itoa(i%cfg.Rooms), cfg.Addr); lerr != nil {
			return lerr
		}
		return nil
	case cfg.HandshakeOnly:
		return nil
	}
	body := []byte(`"idle"`)
	resp, err := c.Request(ctx, routeEcho, body)
	if err == nil && !bytes.Equal(resp, body) {
		err = fmt.Errorf("session %d: reply %.200s", i, resp)
	}
	return err
}

func writeIdleSummary(w io.Writer, r *IdleResult) {
	mode := "one echo request each"
	switch r.Mode {
	case "enter":
		mode = fmt.Sprintf("entered in %d rooms", r.Rooms)
	case "handshake":
		mode = "handshake only"
	}
	fmt.Fprintf(w, "robot idle: %d sessions on %s (%s, %s), server pid %d, heartbeat %ds, held %.1fs\n",
		r.Sessions, r.Addr, r.Transport, mode, r.ServerPid, r.HeartbeatS, r.HoldS)
	if r.Interrupted {
		fmt.Fprintf(w, "  INTERRUPTED: the hold was cut short\n")
	}
	fmt.Fprintf(w, "  connected      %d/%d in %.2f s = %.0f sessions/s; connect %s\n",
		r.Connected, r.Sessions, r.ConnectS, r.ConnectsPerSec, r.Connect)
	fmt.Fprintf(w, "  server RSS     baseline %s, connected %s, end of hold %s, peak %s, after close %s\n",
		fmtBytes(r.BaselineRSS), fmtBytes(r.ConnectedRSS), fmtBytes(r.EndRSS), fmtBytes(r.PeakRSS), fmtBytes(r.AfterCloseRSS))
	fmt.Fprintf(w, "  per session    %.0f bytes (%.1f KiB) = (end of hold - baseline) / %d\n",
		r.BytesPerSession, r.BytesPerSession/1024, r.Connected)
	for _, o := range r.Others {
		fmt.Fprintf(w, "  %-14s RSS baseline %s, end of hold %s, %.0f bytes per session\n",
			o.Name, fmtBytes(o.Baseline), fmtBytes(o.End), o.PerSess)
	}
	if r.Pushes > 0 {
		fmt.Fprintf(w, "  pushes         %d received\n", r.Pushes)
	}
	fmt.Fprintf(w, "  lost in hold   %d\n", r.LostDuringHold)
	fmt.Fprintf(w, "  closing        %d sessions in %.2f s (complete: %v)\n", r.Connected, r.CloseS, r.CloseComplete)
	fmt.Fprintf(w, "  robot RSS      %s\n", fmtBytes(r.RobotRSS))
	if r.CPU != nil {
		fmt.Fprintf(w, "  server CPU     %.2f s over the hold = %.1f%% of a core; robot %.1f%%\n",
			r.CPU.ServerSeconds, r.CPU.ServerPct, r.CPU.RobotPct)
	}
	writeErrors(w, r.Errors)
}
