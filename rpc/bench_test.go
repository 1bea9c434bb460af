package rpc

import (
	"context"
	"testing"

	"github.com/shaddock/shaddock/proto/clusterpb"
)

// DESIGN §7: forwarding rides multiplexed bidirectional streams rather than
// a unary call per message. These two benchmarks measure the difference on
// loopback with the same tiny payload: a round trip over the Forward stream
// versus a unary Bind call (the cheapest unary RPC the service has).
// Run: go test -run=^$ -bench=RoundTrip -benchmem -cpu=2 ./rpc
func BenchmarkRoundTripStream(b *testing.B) {
	fe, _, _ := startNodes(b)
	req := func() *clusterpb.ForwardRequest {
		return &clusterpb.ForwardRequest{Route: "chat.h.echo", Body: []byte("x"), Session: &clusterpb.Session{Uid: "u"}}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := fe.Forward(ctx, "be-1", req()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRoundTripUnary(b *testing.B) {
	_, be, _ := startNodes(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := be.Bind(ctx, Instance{ID: "fe-1"}, 7, "u"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
