package client

import (
	"context"
	"testing"

	"github.com/shaddock/shaddock/tools/client/clienttest"
)

// BenchmarkRequest measures request round trips against the fake server on
// loopback: one at a time (latency), and from many goroutines sharing one
// client (throughput, where writes and reads coalesce). Allocations include
// the fake server's, which are near zero on TCP with NoRecord.
func BenchmarkRequest(b *testing.B) {
	body := []byte(`{"rid":"room1","content":"hello","from":"u1","target":"*"}`)
	for _, tr := range transports {
		b.Run(tr.name+"/serial", func(b *testing.B) {
			s := clienttest.Start(b, clienttest.Config{NoRecord: true, Dict: []string{"chat.chatHandler.send"}})
			c, _ := dial(b, s, tr.opt, Options{})
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Request(ctx, "chat.chatHandler.send", body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tr.name+"/parallel", func(b *testing.B) {
			s := clienttest.Start(b, clienttest.Config{NoRecord: true, Dict: []string{"chat.chatHandler.send"}})
			c, _ := dial(b, s, tr.opt, Options{})
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Request(ctx, "chat.chatHandler.send", body); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
