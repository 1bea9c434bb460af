package main

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBucketRoundTrip(t *testing.T) {
	for v := uint64(0); v < 1<<30; v = v*9/8 + 1 {
		i := bucketOf(v)
		mid := bucketMid(i)
		if d := float64(mid) - float64(v); d > float64(v)/30+1 || -d > float64(v)/30+1 {
			t.Fatalf("v=%d bucket %d mid %d: off by more than 3%%", v, i, mid)
		}
	}
}

func TestQuantile(t *testing.T) {
	var h hist
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.99} {
		got := float64(h.quantile(q))
		want := q * 10000 * 1e3
		if got < want*0.97 || got > want*1.03 {
			t.Errorf("q%.2f = %v, want about %v", q, time.Duration(got), time.Duration(want))
		}
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	var h hist
	if n := testing.AllocsPerRun(100, func() { h.record(time.Duration(rand.Int64N(1e9))) }); n != 0 {
		t.Fatalf("record allocates %v times", n)
	}
}
