package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// exactQuantile is the value at rank ceil(q*n) of sorted samples, the
// definition Hist.Quantile approximates.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = max(rank, 1)
	return sorted[rank-1]
}

func TestHistQuantilesWithinOnePercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := []struct {
		name string
		gen  func() time.Duration
	}{
		{"uniform 1µs-1s", func() time.Duration { return time.Microsecond + time.Duration(rng.Int64N(int64(time.Second))) }},
		{"exponential mean 5ms", func() time.Duration { return time.Duration(rng.ExpFloat64() * 5e6) }},
		{"lognormal around 90ms", func() time.Duration { return time.Duration(math.Exp(math.Log(90e6) + 0.5*rng.NormFloat64())) }},
		{"bimodal 200µs/40ms", func() time.Duration {
			if rng.IntN(10) == 0 {
				return 40*time.Millisecond + time.Duration(rng.Int64N(int64(time.Millisecond)))
			}
			return 200*time.Microsecond + time.Duration(rng.Int64N(int64(50*time.Microsecond)))
		}},
		{"tiny values 0-300ns", func() time.Duration { return time.Duration(rng.Int64N(300)) }},
	}
	for _, d := range dists {
		t.Run(d.name, func(t *testing.T) {
			var h Hist
			samples := make([]time.Duration, 200_000)
			for i := range samples {
				samples[i] = d.gen()
				h.Record(samples[i])
			}
			slices.Sort(samples)
			for _, q := range []float64{0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999} {
				want := exactQuantile(samples, q)
				got := h.Quantile(q)
				if diff := math.Abs(float64(got - want)); diff > 0.01*float64(want) && diff > 1 {
					t.Errorf("q%v = %v, exact %v (off by %.2f%%)", q, got, want, 100*diff/float64(want))
				}
			}
			if h.Max() != samples[len(samples)-1] || h.Min() != samples[0] {
				t.Errorf("min/max = %v/%v, want %v/%v", h.Min(), h.Max(), samples[0], samples[len(samples)-1])
			}
			if h.Quantile(1) != h.Max() {
				t.Errorf("q1 = %v, max %v", h.Quantile(1), h.Max())
			}
			if h.Count() != uint64(len(samples)) {
				t.Errorf("count %d", h.Count())
			}
		})
	}
}

func TestHistBucketsCoverEveryValue(t *testing.T) {
	// Every value lands in a bucket whose range holds it, buckets are
	// contiguous, and no bucket is wider than 1/64 of its lower bound.
	prevEnd := uint64(0)
	for i := range histBuckets {
		lo, w := bucketRange(i)
		if lo != prevEnd {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevEnd)
		}
		if lo >= 1<<histSubBits && w*histHalf > lo {
			t.Fatalf("bucket %d [%d,+%d) is wider than 1/64 of its start", i, lo, w)
		}
		for _, v := range []uint64{lo, lo + w/2, lo + w - 1} {
			if b := bucketOf(v); b != i {
				t.Fatalf("value %d in bucket %d, want %d", v, b, i)
			}
		}
		prevEnd = lo + w
	}
	if b := bucketOf(math.MaxUint64); b != histBuckets-1 {
		t.Fatalf("max value in bucket %d", b)
	}
}

func TestHistMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var all Hist
	parts := make([]Hist, 4)
	for i := range 100_000 {
		v := time.Duration(rng.ExpFloat64() * 2e6)
		all.Record(v)
		parts[i%len(parts)].Record(v)
	}
	var merged Hist
	merged.Merge(&Hist{}) // merging an empty one is a no-op
	for i := range parts {
		merged.Merge(&parts[i])
	}
	if merged != all {
		t.Fatalf("merged histogram differs: count %d/%d, min %v/%v, max %v/%v, mean %v/%v",
			merged.Count(), all.Count(), merged.Min(), all.Min(), merged.Max(), all.Max(), merged.Mean(), all.Mean())
	}
	for _, q := range []float64{0.5, 0.99} {
		if merged.Quantile(q) != all.Quantile(q) {
			t.Fatalf("q%v differs", q)
		}
	}
}

func TestHistEmptyAndEdges(t *testing.T) {
	var h Hist
	if h.Quantile(0.5) != 0 || h.Mean() != 0 || h.Max() != 0 {
		t.Fatal("empty histogram is not all zero")
	}
	h.Record(-time.Second)  // clock step backwards: counted as 0
	h.Record(5 * time.Hour) // beyond the tracked range: last bucket, exact max
	if h.Min() != 0 || h.Max() != 5*time.Hour || h.Quantile(1) != 5*time.Hour {
		t.Fatalf("min %v max %v q1 %v", h.Min(), h.Max(), h.Quantile(1))
	}
	h.Reset()
	if h.Count() != 0 {
		t.Fatal("Reset kept values")
	}
}

func TestHistRecordDoesNotAllocate(t *testing.T) {
	var h Hist
	d := 3 * time.Millisecond
	if n := testing.AllocsPerRun(1000, func() { h.Record(d); d += 7 }); n != 0 {
		t.Fatalf("Record allocates %v times", n)
	}
}

func BenchmarkHistRecord(b *testing.B) {
	var h Hist
	d := time.Duration(0)
	for b.Loop() {
		h.Record(d)
		d += 997
	}
}
