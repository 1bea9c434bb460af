package main

import (
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram with 32 sub-buckets per power of
// two (about 3% relative precision). Recording never allocates.
type hist struct {
	counts [histBuckets]uint32
	total  uint64
}

const (
	histSub     = 6 // values below 1<<histSub ns get one bucket each
	histBuckets = 1 << histSub * 20
)

func bucketOf(v uint64) int {
	if v < 1<<histSub {
		return int(v)
	}
	e := bits.Len64(v) - histSub // >= 1
	m := v >> e                  // in [32, 63]
	i := 1<<histSub + (e-1)*(1<<(histSub-1)) + int(m-1<<(histSub-1))
	if i >= histBuckets {
		i = histBuckets - 1
	}
	return i
}

// bucketMid returns the midpoint of bucket i in nanoseconds.
func bucketMid(i int) uint64 {
	if i < 1<<histSub {
		return uint64(i)
	}
	i -= 1 << histSub
	e := i/(1<<(histSub-1)) + 1
	m := uint64(i%(1<<(histSub-1)) + 1<<(histSub-1))
	return m<<e + (1<<e)/2
}

func (h *hist) record(d time.Duration) {
	h.counts[bucketOf(uint64(d))]++
	h.total++
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
}

// quantile returns the q-quantile (0 < q <= 1).
func (h *hist) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q*float64(h.total) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			return time.Duration(bucketMid(i))
		}
	}
	return time.Duration(bucketMid(histBuckets - 1))
}
