package metrics_test

import (
	"context"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shaddock/shaddock/connector"
	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/metrics"
	"github.com/shaddock/shaddock/protocol"
	"github.com/shaddock/shaddock/tools/client"
)

// cpuTime is this process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRequest is a chat send as a frontend serves it: real clients
// over loopback TCP, a real connector, the chat route's handler answering
// {"route":...}, with and without the metrics wrapper. Concurrent clients
// keep the connector busy, as the chat workload does; cpu-ns/op is the
// whole process's (clients included) CPU per request.
// go test -run=^$ -bench=Request -benchtime=200000x ./metrics
func BenchmarkRequest(b *testing.B) {
	for _, withMetrics := range []bool{false, true} {
		name := "plain"
		if withMetrics {
			name = "metrics"
		}
		b.Run(name, func(b *testing.B) { benchRequest(b, withMetrics) })
	}
}

func benchRequest(b *testing.B, withMetrics bool) {
	const route, clients = "chat.chatHandler.send", 16
	h := handler.Func(func(ctx context.Context, r handler.Request) ([]byte, error) {
		return []byte(`{"route":"onChat"}`), nil
	})
	if withMetrics {
		h = metrics.New(metrics.Config{ID: "connector-1", Type: "connector", Routes: []string{route}}).Wrap(h)
	}
	dict, err := protocol.NewDictionary([]string{route})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := connector.New(connector.Config{ID: "connector-1", Type: "connector", Handler: h, Dictionary: dict, RequestRate: -1})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	ctx := context.Background()
	cs := make([]*client.Client, clients)
	for i := range cs {
		if cs[i], err = client.Dial(ctx, ln.Addr().String(), client.Options{}); err != nil {
			b.Fatal(err)
		}
		defer cs[i].Close()
	}
	body := []byte(`{"rid":"room-1","content":"hello","from":"alice","target":"*"}`)
	b.ResetTimer()
	cpu0, t0 := cpuTime(b), time.Now()
	var wg sync.WaitGroup
	per := b.N / clients
	for i, c := range cs {
		n := per
		if i == 0 {
			n += b.N % clients
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if _, err := c.Request(ctx, route, body); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(t0), cpuTime(b)-cpu0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}
