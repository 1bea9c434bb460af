// Command wsbench-client drives wsbench-server.
//
//	-mode=idle: open N connections, do one echo on each, hold them idle for a
//	settle time and report the server's RSS growth per connection.
//	-mode=echo: C connections each in a closed send/await-echo loop for D;
//	report round trips per second and latency quantiles.
//
// The client speaks WebSocket (gobwas/ws dialer, hand-built masked frames) or,
// with -proto=tcp, Pomelo-style packages (1 type byte + 3-byte length).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

type options struct {
	mode      string
	proto     string
	addr      string
	statsAddr string
	pid       int
	impl      string
	n         int
	c         int
	parallel  int
	size      int
	settle    time.Duration
	dur       time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.mode, "mode", "idle", "idle or echo")
	flag.StringVar(&o.proto, "proto", "ws", "ws or tcp")
	flag.StringVar(&o.addr, "addr", "127.0.0.1:9100", "server address")
	flag.StringVar(&o.statsAddr, "stats", "", "server stats address (default: -addr port + 1)")
	flag.IntVar(&o.pid, "pid", 0, "server pid, for VmRSS (idle mode) and CPU time (echo mode)")
	flag.StringVar(&o.impl, "impl", "", "label for the RESULT line")
	flag.IntVar(&o.n, "n", 15000, "connections (idle mode)")
	flag.IntVar(&o.c, "c", 100, "concurrent connections (echo mode)")
	flag.IntVar(&o.parallel, "parallel", 200, "connection attempts in flight")
	flag.IntVar(&o.size, "size", 64, "message payload bytes")
	flag.DurationVar(&o.settle, "settle", 20*time.Second, "idle hold before measuring (idle mode)")
	flag.DurationVar(&o.dur, "d", 10*time.Second, "duration (echo mode)")
	flag.Parse()
	if o.statsAddr == "" {
		host, port, _ := net.SplitHostPort(o.addr)
		p, _ := strconv.Atoi(port)
		o.statsAddr = net.JoinHostPort(host, strconv.Itoa(p+1))
	}
	if o.size < 1 || o.size > 125 {
		log.Fatal("-size must be 1..125 (single-byte WebSocket length)")
	}
	var err error
	switch o.mode {
	case "idle":
		err = runIdle(o)
	case "echo":
		err = runEcho(o)
	default:
		err = fmt.Errorf("unknown -mode %q", o.mode)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// session is one client connection with its pre-built request and buffers.
type session struct {
	conn net.Conn
	req  []byte // the complete request frame/package
	want []byte // expected echoed payload
	resp []byte // receive buffer
	ws   bool
}

var mask = [4]byte{0x5a, 0xa5, 0x3c, 0xc3}

func newSession(c net.Conn, isWS bool, size int) *session {
	s := &session{conn: c, ws: isWS, want: make([]byte, size), resp: make([]byte, 16+size)}
	for i := range s.want {
		s.want[i] = byte('a' + i%26)
	}
	if isWS {
		s.req = make([]byte, 0, 6+size)
		s.req = append(s.req, 0x80|byte(ws.OpBinary), 0x80|byte(size))
		s.req = append(s.req, mask[:]...)
		s.req = append(s.req, s.want...)
		ws.Cipher(s.req[6:], mask, 0)
	} else {
		s.req = []byte{4, byte(size >> 16), byte(size >> 8), byte(size)}
		s.req = append(s.req, s.want...)
	}
	return s
}

// roundTrip sends the request and waits for the complete echo.
func (s *session) roundTrip() error {
	if _, err := s.conn.Write(s.req); err != nil {
		return err
	}
	var p []byte
	var err error
	if s.ws {
		p, err = s.readFrame()
	} else {
		p, err = s.readPackage()
	}
	if err != nil {
		return err
	}
	if !bytes.Equal(p, s.want) {
		return errors.New("echo mismatch")
	}
	return nil
}

func (s *session) readFrame() ([]byte, error) {
	b := s.resp
	if _, err := io.ReadFull(s.conn, b[:2]); err != nil {
		return nil, err
	}
	if b[0] != 0x80|byte(ws.OpBinary) || b[1]&0x80 != 0 {
		return nil, fmt.Errorf("unexpected frame header % x", b[:2])
	}
	n := int(b[1] & 0x7f)
	if n > len(s.want) {
		return nil, fmt.Errorf("unexpected frame length %d", n)
	}
	if _, err := io.ReadFull(s.conn, b[:n]); err != nil {
		return nil, err
	}
	return b[:n], nil
}

func (s *session) readPackage() ([]byte, error) {
	b := s.resp
	if _, err := io.ReadFull(s.conn, b[:4]); err != nil {
		return nil, err
	}
	n := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
	if n > len(s.want) {
		return nil, fmt.Errorf("unexpected package length %d", n)
	}
	if _, err := io.ReadFull(s.conn, b[:n]); err != nil {
		return nil, err
	}
	return b[:n], nil
}

func (s *session) close() {
	if tc, ok := s.conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // RST: leave no TIME_WAIT behind between runs
	}
	_ = s.conn.Close()
}

// dial opens one connection, upgrades it if needed and does one echo.
func dial(ctx context.Context, o options) (*session, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	c, err := d.DialContext(ctx, "tcp", o.addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if o.proto == "ws" {
		dl := ws.Dialer{NetDial: func(context.Context, string, string) (net.Conn, error) { return c, nil }}
		_, br, _, err := dl.Dial(ctx, "ws://"+o.addr+"/")
		if err != nil {
			_ = c.Close()
			return nil, err
		}
		if br != nil { // the server must not speak before our first frame
			ws.PutReader(br)
			_ = c.Close()
			return nil, errors.New("unexpected data after handshake")
		}
	}
	s := newSession(c, o.proto == "ws", o.size)
	if err := s.roundTrip(); err != nil {
		s.close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return s, nil
}

// connectAll opens n sessions with bounded parallelism.
func connectAll(o options, n int) ([]*session, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := make([]*session, n)
	var next, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < min(o.parallel, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				s, err := dial(ctx, o)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				out[i] = s
			}
		}()
	}
	wg.Wait()
	ok := out[:0]
	for _, s := range out {
		if s != nil {
			ok = append(ok, s)
		}
	}
	if f := failed.Load(); f > 0 {
		log.Printf("%d of %d connections failed; first error: %v", f, n, firstErr.Load())
	}
	if len(ok) == 0 {
		return nil, int(failed.Load()), errors.New("no connection succeeded")
	}
	return ok, int(failed.Load()), nil
}

func closeAll(ss []*session) {
	for _, s := range ss {
		s.close()
	}
}

// serverStats mirrors the server's Stats document.
type serverStats struct {
	Goroutines int    `json:"goroutines"`
	Sessions   int64  `json:"sessions"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	Sys        uint64 `json:"sys"`
	NumGC      uint32 `json:"num_gc"`
	Mallocs    uint64 `json:"mallocs"`
	TotalAlloc uint64 `json:"total_alloc"`
}

func fetchStats(addr string, gc bool) (serverStats, error) {
	var st serverStats
	url := "http://" + addr + "/stats"
	if gc {
		url += "?gc=1"
	}
	cl := http.Client{Timeout: 30 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// vmRSS returns the resident set size of pid in bytes.
func vmRSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("VmRSS not found")
}

// cpuTime returns the user+system CPU time pid has used (0 if pid is 0).
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command: state is field 3, utime 14, stime 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

type snapshot struct {
	rss int64
	st  serverStats
}

func snap(o options, gc bool) (snapshot, error) {
	st, err := fetchStats(o.statsAddr, gc)
	if err != nil {
		return snapshot{}, err
	}
	rss, err := vmRSS(o.pid)
	return snapshot{rss: rss, st: st}, err
}

func runIdle(o options) error {
	if o.pid == 0 {
		return errors.New("-pid is required in idle mode")
	}
	before, err := snap(o, true)
	if err != nil {
		return err
	}
	t0 := time.Now()
	ss, failed, err := connectAll(o, o.n)
	if err != nil {
		return err
	}
	defer closeAll(ss)
	connectTime := time.Since(t0)
	time.Sleep(o.settle)
	after, err := snap(o, false)
	if err != nil {
		return err
	}
	afterGC, err := snap(o, true)
	if err != nil {
		return err
	}
	n := float64(len(ss))
	per := func(a, b int64) float64 { return float64(a-b) / n }
	fmt.Printf("RESULT idle load1=%s impl=%s n=%d failed=%d sessions=%d connect_s=%.1f rss_before=%d rss_after=%d "+
		"rss_per_conn=%.0f rss_per_conn_gc=%.0f heap_per_conn_gc=%.0f stack_per_conn=%.0f goroutines_per_conn=%.2f num_gc=%d\n",
		loadAvg(), o.impl, len(ss), failed, after.st.Sessions, connectTime.Seconds(), before.rss, after.rss,
		per(after.rss, before.rss), per(afterGC.rss, before.rss),
		per(int64(afterGC.st.HeapInuse), int64(before.st.HeapInuse)),
		per(int64(afterGC.st.StackInuse), int64(before.st.StackInuse)),
		float64(after.st.Goroutines-before.st.Goroutines)/n, after.st.NumGC-before.st.NumGC)
	return nil
}

func runEcho(o options) error {
	ss, failed, err := connectAll(o, o.c)
	if err != nil {
		return err
	}
	defer closeAll(ss)
	hists := make([]hist, len(ss))
	var errs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, s := range ss {
		wg.Add(1)
		go func(s *session, h *hist) {
			defer wg.Done()
			<-start
			end := time.Now().Add(o.dur)
			_ = s.conn.SetDeadline(end.Add(5 * time.Second)) // bounded even if the server stalls
			t := time.Now()
			for t.Before(end) {
				if err := s.roundTrip(); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
					return
				}
				now := time.Now()
				h.record(now.Sub(t))
				t = now
			}
		}(s, &hists[i])
	}
	st0, err := fetchStats(o.statsAddr, false)
	if err != nil {
		return err
	}
	cpu0 := cpuTime(o.pid)
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	cpu := cpuTime(o.pid) - cpu0
	st1, err := fetchStats(o.statsAddr, false)
	if err != nil {
		return err
	}
	var all hist
	for i := range hists {
		all.merge(&hists[i])
	}
	if e := errs.Load(); e > 0 {
		log.Printf("%d connections failed during the run; first error: %v", e, firstErr.Load())
	}
	perRT := func(v float64) float64 { return v / float64(max(all.total, 1)) }
	fmt.Printf("RESULT echo impl=%s c=%d failed=%d errors=%d size=%d rtt=%d rps=%.0f p50_us=%.1f p99_us=%.1f "+
		"srv_cpu_us_per_rt=%.2f srv_allocs_per_rt=%.2f srv_alloc_bytes_per_rt=%.0f load1=%s\n",
		o.impl, len(ss), failed, errs.Load(), o.size, all.total, float64(all.total)/elapsed.Seconds(),
		float64(all.quantile(0.50))/1e3, float64(all.quantile(0.99))/1e3,
		perRT(float64(cpu.Microseconds())), perRT(float64(st1.Mallocs-st0.Mallocs)),
		perRT(float64(st1.TotalAlloc-st0.TotalAlloc)), loadAvg())
	return nil
}
