package backend

import (
	"context"
	"fmt"
	"testing"

	"github.com/shaddock/shaddock/proto/clusterpb"
)

// BenchmarkChannelPush: a room of 20 members on two connectors, pushed to:
// one encode, one request per connector. Run: go test -run=^$ -bench=ChannelPush -benchmem ./backend
func BenchmarkChannelPush(b *testing.B) {
	f := newFake()
	srv := New(Config{Cluster: f})
	defer srv.Close()
	ch := srv.Channels().GetOrCreate("r")
	for i := range 20 {
		ch.Add(Target{UID: fmt.Sprintf("u%d*r", i), FrontendID: fmt.Sprintf("conn-%d", i%2), FrontendEpoch: 1, SessionID: int64(i + 1)})
	}
	body := []byte(`{"msg":"hello","from":"a","target":"*"}`)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := ch.Push(ctx, "onChat", body); err != nil {
			b.Fatal(err)
		}
		if len(f.pushes["conn-0"]) > 1<<16 {
			f.pushes = map[string][]*clusterpb.PushRequest{}
		}
	}
}
