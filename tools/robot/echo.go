package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shaddock/shaddock/tools/client"
)

// routeEcho answers with the request body (examples/echo).
const routeEcho = "connector.echoHandler.echo"

// echoRateNote is printed with every echo result: a server left at its
// default rate limit answers 429 past 1000 requests/s per session.
const echoRateNote = "the echo server must run with -rate -1 (its default per-session limit of 1000 req/s answers 429 beyond)"

// echoConfig is one run of the echo workload.
type echoConfig struct {
	Addr               string
	Transport          string
	Clients            int
	Size               int // request body bytes (a JSON string)
	Warmup, Duration   time.Duration
	ConnectConcurrency int
	ConnectTimeout     time.Duration // bound on the whole connect phase
	Timeout            time.Duration // how long a request may still be answered after the window
	Pids               []*watchedPid
	Progress           io.Writer
}

type echoClient struct {
	c    *client.Client
	rt   Hist
	fail bool

	requests atomic.Int64 // replies inside the window
	replies  atomic.Int64
}

// EchoResult is the outcome of an echo run (the -json output).
type EchoResult struct {
	Workload    string      `json:"workload"`
	Addr        string      `json:"addr"`
	Transport   string      `json:"transport"`
	Note        string      `json:"note"`
	Clients     int         `json:"clients"`
	Connected   int         `json:"connected"`
	SizeBytes   int         `json:"size_bytes"`
	WarmupS     float64     `json:"warmup_s"`
	DurationS   float64     `json:"duration_s"`
	ConnectS    float64     `json:"connect_s"`
	Requests    int64       `json:"requests"`
	ReqPerSec   float64     `json:"req_per_s"`
	RoundTrip   Latency     `json:"round_trip"`
	CloseS      float64     `json:"close_s"`
	CPU         *CPUReport  `json:"cpu,omitempty"`
	ErrorCount  int64       `json:"error_count"`
	Errors      []ErrorKind `json:"errors"`
	Interrupted bool        `json:"interrupted,omitempty"`
}

// echoBody is a JSON string of exactly size bytes (at least 2).
func echoBody(size int) []byte {
	size = max(size, 2)
	b := bytes.Repeat([]byte("x"), size)
	b[0], b[size-1] = '"', '"'
	return b
}

// connectAll dials n clients, concurrency at a time, within ctx; dial
// returns the client for index i. Failures are logged in errs and leave a
// nil entry. Each worker records connect latencies into its own histogram,
// merged into the result.
func connectAll(ctx context.Context, n, concurrency int, errs *errorLog, connected *atomic.Int64,
	dial func(ctx context.Context, i int) (*client.Client, error)) ([]*client.Client, *Hist) {
	out := make([]*client.Client, n)
	concurrency = max(1, min(concurrency, n))
	hists := make([]Hist, concurrency)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Go(func() {
			h := &hists[w]
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if ctx.Err() != nil {
					errs.add("connect: not started in time", ctx.Err())
					continue
				}
				t0 := time.Now()
				c, err := dial(ctx, i)
				if err != nil {
					errs.add(classify("connect", err), err)
					continue
				}
				h.Record(time.Since(t0))
				out[i] = c
				connected.Add(1)
			}
		})
	}
	wg.Wait()
	var all Hist
	for i := range hists {
		all.Merge(&hists[i])
	}
	return out, &all
}

// runEcho runs closed-loop echo requests from every client for warm-up +
// duration.
func runEcho(ctx context.Context, cfg echoConfig) (*EchoResult, error) {
	if cfg.Clients <= 0 || cfg.Duration <= 0 {
		return nil, fmt.Errorf("echo: need clients and duration > 0")
	}
	res := &EchoResult{
		Workload: "echo", Addr: cfg.Addr, Transport: transportName(cfg.Transport), Note: echoRateNote,
		Clients: cfg.Clients, SizeBytes: max(cfg.Size, 2), WarmupS: cfg.Warmup.Seconds(),
	}
	errs := newErrorLog()
	body := echoBody(cfg.Size)
	clients := make([]*echoClient, cfg.Clients)
	for i := range clients {
		clients[i] = &echoClient{}
	}
	sum := func(f func(*echoClient) int64) int64 {
		var n int64
		for _, c := range clients {
			n += f(c)
		}
		return n
	}
	var connected atomic.Int64
	start := time.Now()
	if cfg.Progress != nil {
		var last int64
		prog := startProgress(cfg.Progress, start, func(_, since time.Duration) string {
			r := sum(func(c *echoClient) int64 { return c.replies.Load() })
			line := fmt.Sprintf("clients %d/%d  requests %d  req/s %.0f  errors %d",
				connected.Load(), cfg.Clients, r, rate(float64(r-last), since), errs.total.Load())
			last = r
			return line
		})
		defer prog.stop()
	}

	cctx, ccancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	conns, _ := connectAll(cctx, cfg.Clients, cfg.ConnectConcurrency, errs, &connected,
		func(ctx context.Context, i int) (*client.Client, error) {
			return client.Dial(ctx, cfg.Addr, client.Options{Transport: cfg.Transport})
		})
	ccancel()
	res.ConnectS = time.Since(start).Seconds()
	res.Connected = int(connected.Load())
	for i, c := range conns {
		clients[i].c = c
	}

	win := &window{}
	loadStart := time.Now()
	end := loadStart.Add(cfg.Warmup + cfg.Duration)
	win.set(loadStart.Add(cfg.Warmup), end)
	runCtx, rcancel := context.WithDeadline(ctx, end.Add(cfg.Timeout))
	defer rcancel()
	var wg sync.WaitGroup
	for _, ec := range clients {
		if ec.c == nil {
			continue
		}
		wg.Go(func() { ec.run(runCtx, errs, win, end, body) })
	}
	meter := &cpuMeter{pids: cfg.Pids}
	if sleepUntil(ctx, loadStart.Add(cfg.Warmup)) {
		meter.begin()
		sleepUntil(ctx, end)
	} else {
		meter.begin()
	}
	if ctx.Err() != nil {
		res.Interrupted = true
		if now := time.Now().UnixNano(); now < win.end.Load() {
			win.end.Store(max(now, win.start.Load()))
		}
	}
	cpu := meter.end()
	wg.Wait()
	rcancel()

	for _, ec := range clients {
		if ec.c != nil && !ec.fail {
			if err := ec.c.Err(); err != nil {
				errs.add(classify("connection", err), err)
			}
		}
	}
	closeStart := time.Now()
	closeAll(clients, func(ec *echoClient) *client.Client { return ec.c }, cfg.ConnectConcurrency)
	res.CloseS = time.Since(closeStart).Seconds()

	var rt Hist
	for _, ec := range clients {
		rt.Merge(&ec.rt)
	}
	res.DurationS = win.duration().Seconds()
	res.Requests = sum(func(c *echoClient) int64 { return c.requests.Load() })
	res.ReqPerSec = rate(float64(res.Requests), win.duration())
	res.RoundTrip = summarize(&rt)
	res.CPU = cpu.perRequests(res.Requests)
	res.Errors = errs.list()
	res.ErrorCount = errs.total.Load()
	return res, nil
}

// run is one client's closed loop.
func (ec *echoClient) run(ctx context.Context, errs *errorLog, win *window, end time.Time, body []byte) {
	for ctx.Err() == nil {
		t0 := time.Now()
		if !t0.Before(end) {
			return
		}
		resp, err := ec.c.Request(ctx, routeEcho, body)
		t1 := time.Now()
		if err != nil {
			if ctx.Err() == nil || ctx.Err() == context.DeadlineExceeded {
				errs.add(classify("echo", err), err)
			}
			ec.fail = true
			return
		}
		if !bytes.Equal(resp, body) {
			if code := replyCode(resp); code != 0 {
				errs.add(fmt.Sprintf("echo: code %d", code), fmt.Errorf("reply %.200s", resp))
			} else {
				errs.add("echo: reply differs from the request", fmt.Errorf("reply %.200s", resp))
			}
			continue
		}
		ec.replies.Add(1)
		if win.measuring(t1) {
			ec.rt.Record(t1.Sub(t0))
			ec.requests.Add(1)
		}
	}
}

func writeEchoSummary(w io.Writer, r *EchoResult) {
	fmt.Fprintf(w, "robot echo: %d clients on %s (%s), %d-byte bodies, closed loop, warm-up %.0fs, measured %.1fs\n",
		r.Clients, r.Addr, r.Transport, r.SizeBytes, r.WarmupS, r.DurationS)
	fmt.Fprintf(w, "  note: %s\n", r.Note)
	if r.Interrupted {
		fmt.Fprintf(w, "  INTERRUPTED: the window was cut short\n")
	}
	fmt.Fprintf(w, "  connected      %d/%d in %.2f s\n", r.Connected, r.Clients, r.ConnectS)
	fmt.Fprintf(w, "  requests       %s = %.0f req/s\n", fmtCount(r.Requests), r.ReqPerSec)
	fmt.Fprintf(w, "  round trip     %s\n", r.RoundTrip)
	fmt.Fprintf(w, "  closing        %d clients in %.2f s\n", r.Connected, r.CloseS)
	writeCPU(w, r.CPU)
	writeErrors(w, r.Errors)
}
