package rpc

import (
	"context"
	"testing"

	"github.com/shaddock/shaddock/proto/clusterpb"
)

// BenchmarkPushOneWay: one-way pushes from a backend to a frontend over the
// push stream, acknowledged in batches (a room's onChat to its members on
// one connector). Run: go test -run=^$ -bench=PushOneWay -benchmem ./rpc
func BenchmarkPushOneWay(b *testing.B) {
	_, be, front := startNodes(b)
	ctx := context.Background()
	body := []byte(`{"msg":"hello","from":"a","target":"*"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := be.PushMany(ctx, map[string]*clusterpb.PushRequest{
			"fe-1": {Route: "onChat", Body: body, SessionIds: []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		}, false); err != nil {
			b.Fatal(err)
		}
		if len(front.pushes) > 1<<16 { // keep the fake's record small
			front.mu.Lock()
			front.pushes = front.pushes[:0]
			front.mu.Unlock()
		}
	}
}
