package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shaddock/shaddock/protocol"
)

// Figures of the flood in TestAbusiveClients.
const (
	// The echo server runs with -rate -1 (no per-session limit). The default
	// limit, 1000/s with a burst of 1000, is applied when the server reads a
	// message, not when the client sent it: on a loaded machine a server
	// that stalls for a second and then reads the backlog would drop
	// notifies beyond the burst, silently, and the "every broadcast arrives
	// in order" check would fail for a reason this test is not about. The
	// flood is paced and bounded by the test itself instead. At 500/s the
	// slow reader is closed after about 6 s, within the 10 s that (a) takes
	// anyway.
	floodRate     = 500 // notifies per second
	floodTick     = 50 * time.Millisecond
	floodBodySize = 1024
	// The flood is bounded in count and time; the slow client must be closed
	// well within it.
	floodMaxMsgs = 16000
	floodMaxTime = 25 * time.Second
	// Broadcasts sent after the slow client is closed, to show the others
	// are still served.
	floodTail = 400

	// rssHeadroom bounds the server's RSS growth over its baseline during
	// the flood. The connector bounds each session's write queue at 256 KiB
	// (Config.WriteQueueBytes); with 8 sessions that is 2 MiB even if no
	// package were shared (broadcasts are encoded once and shared). Add the
	// pooled 16 KiB read and 32 KiB write buffers per busy session, Go's
	// GC headroom (heap may reach twice the live data, and the minimum heap
	// goal is 4 MiB) and the churn of ~1 KB garbage per message: a few MiB.
	// Measured: +5 MiB. 16 MiB leaves room for a noisy machine while
	// staying below what an unbounded queue would hold: the flood may send
	// up to 16 MB before the test gives up, all of which a queue without a
	// limit would keep (plus GC headroom).
	rssHeadroom = 16 << 20

	// goodRecvBuf is the well-behaved clients' SO_RCVBUF. The clients run in
	// the race-instrumented test binary on a shared machine, where a reader
	// goroutine can stall for half a second; with the kernel's small
	// default window, a stall that long at 500 KB/s of broadcasts would fill
	// the server's 256 KiB queue for that client too and cut it as not
	// reading, which is right for the server and wrong for this test. A 1
	// MiB buffer (2 MiB of window) absorbs seconds of stall.
	goodRecvBuf = 1 << 20
)

// TestAbusiveClients runs several abusive clients against one echo server
// while well-behaved clients keep working:
//
//	(a) clients that connect (TCP; WebSocket upgraded) and never send the
//	    Pomelo handshake are closed at the handshake timeout (10 s default);
//	(b) clients announcing a 16 MiB package are closed at once;
//	(c) a client that binds a uid and stops reading while another floods
//	    broadcasts is closed as "not reading", and the server's RSS stays
//	    bounded;
//	(d) TCP and WebSocket clients doing round trips and receiving every
//	    broadcast see no error throughout.
func TestAbusiveClients(t *testing.T) {
	t.Parallel()
	// Default limits but the request rate (see floodRate): the point is what
	// they do.
	echo, addr := StartEcho(t, "-rate", "-1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	testStart := time.Now()

	// (d) Well-behaved clients, running until the end.
	var goods []*goodClient
	for i, transport := range []string{"tcp", "ws", "tcp", "ws"} {
		g := startGood(ctx, t, addr, fmt.Sprintf("good-%d-%s", i, transport), transport)
		goods = append(goods, g)
	}

	// (a) Silent clients: one raw TCP, one upgraded WebSocket that never
	// sends the Pomelo handshake.
	type silentResult struct {
		transport, local string
		after            time.Duration
		err              error
	}
	silent := make(chan silentResult, 2)
	for _, transport := range []string{"tcp", "ws"} {
		start := time.Now()
		c, err := Dial(ctx, addr, transport, DialOptions{})
		if err != nil {
			t.Fatalf("(a) dial %s: %v", transport, err)
		}
		defer c.Close()
		go func() {
			c.NetConn().SetReadDeadline(time.Now().Add(60 * time.Second))
			_, err := c.ReadPackage()
			silent <- silentResult{transport, c.LocalAddr(), time.Since(start), err}
		}()
	}

	// (b) Clients announcing a 16 MiB data package after the handshake.
	for _, transport := range []string{"tcp", "ws"} {
		c, err := Dial(ctx, addr, transport, DialOptions{})
		if err != nil {
			t.Fatalf("(b) dial %s: %v", transport, err)
		}
		defer c.Close()
		if err := c.Handshake(); err != nil {
			t.Fatalf("(b) %s: %v", transport, err)
		}
		if err := c.WriteRaw([]byte{byte(protocol.Data), 0xff, 0xff, 0xff}); err != nil {
			t.Fatalf("(b) %s: write header: %v", transport, err)
		}
		after, err := readUntilClosed(c, 30*time.Second)
		if err != nil {
			t.Fatalf("(b) %s: %v", transport, err)
		}
		line := echo.WaitLog(t, 10*time.Second, "protocol violation", "package too large", "remote="+c.LocalAddr())
		t.Logf("(b) %s: closed %v after a 16 MiB header; server: %s", transport, after.Round(time.Microsecond), logMsg(line.Text))
		if after > 5*time.Second {
			t.Errorf("(b) %s: closed only %v after the oversized header", transport, after)
		}
	}

	// (c) A slow reader: small receive buffer, handshake, bind, then never
	// read again.
	slow, err := Dial(ctx, addr, "tcp", DialOptions{RecvBuf: 4096})
	if err != nil {
		t.Fatalf("(c) dial: %v", err)
	}
	defer slow.Close()
	if err := slow.Handshake(); err != nil {
		t.Fatalf("(c) %v", err)
	}
	if resp, err := slow.RequestSync("connector.echoHandler.bind", []byte(`{"uid":"slow-reader"}`), 1); err != nil || !bytes.Contains(resp, []byte(`"code":200`)) {
		t.Fatalf("(c) bind: %s, %v", resp, err)
	}

	// The flooder is a well-behaved client too: it reads its own broadcasts.
	flooder := startGood(ctx, t, addr, "flooder-tcp", "tcp")
	goods = append(goods, flooder)

	baseline := maxRSS(t, echo, 5)
	var peak atomic.Int64
	peak.Store(baseline)
	sampling := make(chan struct{})
	sampled := make(chan int, 1)
	go func() {
		n := 0
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sampling:
				sampled <- n
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if rss, err := echo.RSS(); err == nil {
				n++
				if rss > peak.Load() {
					peak.Store(rss)
				}
			}
		}
	}()

	pad := strings.Repeat("x", floodBodySize-len(`{"seq":00000,"pad":""}`))
	floodStart := time.Now()
	var (
		sent       int
		closedLine LogLine
		closedSeen bool
		tailLeft   = floodTail
	)
	tick := time.NewTicker(floodTick)
	perTick := floodRate * int(floodTick) / int(time.Second)
flood:
	for sent < floodMaxMsgs && time.Since(floodStart) < floodMaxTime {
		select {
		case <-tick.C:
		case <-ctx.Done():
			break flood
		}
		for range perTick {
			sent++
			body := fmt.Sprintf(`{"seq":%05d,"pad":%q}`, sent, pad)
			if err := flooder.cl.Notify("connector.echoHandler.broadcast", []byte(body)); err != nil {
				t.Fatalf("(c) flood notify %d: %v", sent, err)
			}
		}
		if !closedSeen {
			closedLine, closedSeen = echo.Log.Find("client not reading", "remote="+slow.LocalAddr())
			continue
		}
		if tailLeft -= perTick; tailLeft <= 0 {
			break
		}
	}
	tick.Stop()
	floodTime := time.Since(floodStart)
	// Let the last broadcasts drain before the last samples.
	waitBroadcasts(t, goods, sent, 30*time.Second)
	close(sampling)
	samples := <-sampled

	if !closedSeen {
		closedLine = echo.WaitLog(t, 10*time.Second, "client not reading", "remote="+slow.LocalAddr())
	}
	t.Logf("(c) flood: %d broadcasts of %d bytes in %v (%d/s), to %d sessions",
		sent, floodBodySize, floodTime.Round(time.Millisecond), floodRate, len(goods)+1)
	t.Logf("(c) slow reader closed %v after the flood began; server: %s",
		closedLine.At.Sub(floodStart).Round(time.Millisecond), logMsg(closedLine.Text))
	t.Logf("(c) server RSS: baseline %.1f MiB, peak %.1f MiB (+%.1f MiB; bound +%d MiB), %d samples",
		mib(baseline), mib(peak.Load()), mib(peak.Load()-baseline), rssHeadroom>>20, samples)
	if peak.Load()-baseline > rssHeadroom {
		t.Errorf("(c) server RSS grew by %.1f MiB during the flood, above the %d MiB bound", mib(peak.Load()-baseline), rssHeadroom>>20)
	}
	// The slow client's socket was really closed: reading now drains what
	// the kernels buffered, then ends.
	drained, drainErr := drainUntilClosed(slow, 30*time.Second)
	if drainErr != nil {
		t.Errorf("(c) slow reader: %v", drainErr)
	} else {
		t.Logf("(c) slow reader had %d KiB buffered in the kernels (%d broadcasts' worth), then EOF/reset", drained>>10, drained/floodBodySize)
	}

	// (a) results: they were closed at the handshake timeout.
	for range 2 {
		var r silentResult
		select {
		case r = <-silent:
		case <-time.After(60 * time.Second):
			t.Fatal("(a) a silent client was not closed within 60 s")
		}
		if !isClosedErr(r.err) {
			t.Errorf("(a) %s: read ended with %v, want the server closing the connection", r.transport, r.err)
		}
		if r.after < 9500*time.Millisecond || r.after > 30*time.Second {
			t.Errorf("(a) %s: closed after %v, want about the 10 s handshake timeout", r.transport, r.after)
		}
		line := echo.WaitLog(t, 10*time.Second, "handshake timeout", "remote="+r.local)
		t.Logf("(a) %s: closed %v after connecting; server: %s", r.transport, r.after.Round(time.Millisecond), logMsg(line.Text))
	}

	// (d) The well-behaved clients saw nothing wrong.
	for _, g := range goods {
		g.stopAndWait()
		reqs, maxRTT, errs := g.result()
		for _, e := range errs {
			t.Errorf("(d) %s: %s", g.name, e)
		}
		if reqs == 0 {
			t.Errorf("(d) %s made no request", g.name)
		}
		t.Logf("(d) %s: %d round trips (max %v), %d/%d broadcasts in order, %d errors",
			g.name, reqs, maxRTT.Round(time.Microsecond), g.broadcasts.Load(), sent, len(errs))
		if line, bad := echo.Log.Find("remote=" + g.local); bad {
			t.Errorf("(d) %s: the server logged about it: %s", g.name, line.Text)
		}
	}
	for _, l := range echo.Log.Lines() {
		if strings.Contains(l.Text, "level=ERROR") {
			t.Errorf("server logged an error: %s", l.Text)
		}
	}
	if err := echo.Stop(); !isExit(err, 0) {
		t.Errorf("echo did not exit cleanly on SIGTERM: %v", err)
	}
	t.Logf("test took %v", time.Since(testStart).Round(time.Millisecond))
}

// goodClient does request/response round trips at a modest pace and checks
// that every broadcast arrives, in order.
type goodClient struct {
	name  string
	local string
	cl    *Client

	broadcasts atomic.Int64 // onBroadcast pushes received, in sequence
	stop       chan struct{}
	done       chan struct{}

	mu     sync.Mutex
	reqs   int
	maxRTT time.Duration
	errs   []string
}

func startGood(ctx context.Context, t *testing.T, addr, name, transport string) *goodClient {
	t.Helper()
	c, err := Dial(ctx, addr, transport, DialOptions{RecvBuf: goodRecvBuf})
	if err != nil {
		t.Fatalf("%s: dial: %v", name, err)
	}
	if err := c.Handshake(); err != nil {
		c.Close()
		t.Fatalf("%s: %v", name, err)
	}
	g := &goodClient{name: name, local: c.LocalAddr(), stop: make(chan struct{}), done: make(chan struct{})}
	g.cl = c.Start(g.onPush)
	t.Cleanup(g.stopAndWait)
	go g.loop(ctx)
	return g
}

// onPush runs on the client's reader goroutine.
func (g *goodClient) onPush(m protocol.Message) {
	if m.Route != "onBroadcast" {
		g.fail("unexpected push %s: %.80s", m.Route, m.Body)
		return
	}
	seq, ok := parseSeq(m.Body)
	if want := g.broadcasts.Load() + 1; !ok || seq != want {
		g.fail("broadcast seq %d (body %.40s), want %d", seq, m.Body, want)
		return
	}
	g.broadcasts.Add(1)
}

// loop sends an echo request every 10 ms (100/s, far under the default rate
// limit) until stopped.
func (g *goodClient) loop(ctx context.Context) {
	defer close(g.done)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-g.stop:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		body := fmt.Sprintf(`{"client":%q,"n":%d}`, g.name, n)
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		start := time.Now()
		resp, err := g.cl.Request(rctx, "connector.echoHandler.echo", []byte(body))
		rtt := time.Since(start)
		cancel()
		if err != nil {
			g.fail("request %d: %v", n, err)
			return
		}
		if string(resp) != body {
			g.fail("request %d: response %q, want %q", n, resp, body)
		}
		g.mu.Lock()
		g.reqs++
		g.maxRTT = max(g.maxRTT, rtt)
		g.mu.Unlock()
	}
}

func (g *goodClient) fail(format string, args ...any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.errs) < 5 {
		g.errs = append(g.errs, fmt.Sprintf(format, args...))
	}
}

func (g *goodClient) result() (reqs int, maxRTT time.Duration, errs []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.reqs, g.maxRTT, append([]string(nil), g.errs...)
}

// stopAndWait ends the request loop and closes the connection; idempotent.
func (g *goodClient) stopAndWait() {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	<-g.done
	g.cl.Close()
}

// waitBroadcasts waits until every client has received n broadcasts.
func waitBroadcasts(t *testing.T, goods []*goodClient, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, g := range goods {
		for g.broadcasts.Load() < int64(n) {
			if time.Now().After(deadline) {
				t.Errorf("%s received %d of %d broadcasts", g.name, g.broadcasts.Load(), n)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// parseSeq reads the "seq" of a flood body without a JSON decode per push.
func parseSeq(b []byte) (int64, bool) {
	rest, ok := bytes.CutPrefix(b, []byte(`{"seq":`))
	if !ok {
		return 0, false
	}
	i := bytes.IndexByte(rest, ',')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(rest[:i]), 10, 64)
	return n, err == nil
}

// readUntilClosed reads packages until the server closes the connection and
// returns how long that took; an error if it stayed open past timeout.
func readUntilClosed(c *Conn, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	c.NetConn().SetReadDeadline(start.Add(timeout))
	for {
		if _, err := c.ReadPackage(); err != nil {
			if !isClosedErr(err) {
				return 0, fmt.Errorf("read ended with %v, want the server closing the connection", err)
			}
			return time.Since(start), nil
		}
	}
}

// drainUntilClosed reads raw bytes until the connection ends, and returns
// how many it read.
func drainUntilClosed(c *Conn, timeout time.Duration) (int, error) {
	nc := c.NetConn()
	nc.SetReadDeadline(time.Now().Add(timeout))
	n, err := io.Copy(io.Discard, nc)
	if err != nil && !isClosedErr(err) { // nil is a clean EOF
		return int(n), fmt.Errorf("read %d bytes, then %v; want the server closing the connection", n, err)
	}
	return int(n), nil
}

// isClosedErr reports whether a read error means the peer closed the
// connection (FIN or RST), rather than a timeout.
func isClosedErr(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.Contains(err.Error(), "connection reset")
}

// maxRSS returns the largest of n RSS samples taken 20 ms apart.
func maxRSS(t *testing.T, p *Proc, n int) int64 {
	t.Helper()
	var m int64
	for i := range n {
		rss, err := p.RSS()
		if err != nil {
			t.Fatalf("RSS of %s: %v", p.Name, err)
		}
		m = max(m, rss)
		if i < n-1 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	return m
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// logMsg trims a slog text line to its message and attributes.
func logMsg(line string) string {
	if i := strings.Index(line, "msg="); i >= 0 {
		return line[i:]
	}
	return line
}
