package main

import (
	"math"
	"math/bits"
	"time"
)

// Hist is a log-linear latency histogram in the manner of HdrHistogram:
// values below 2^histSubBits nanoseconds have a bucket each, every power of
// two above is split into 2^(histSubBits-1) equal buckets. A bucket is at
// most 1/64 of its lower bound wide, so a quantile read at the bucket's
// midpoint is within 1/128 (0.8 %) of a recorded value. Its size is fixed
// (about 10 KiB), Record never allocates, and histograms merge by addition,
// so each worker keeps its own and nothing is shared per sample.
//
// A Hist is not safe for concurrent use: give each goroutine its own, or
// guard it.
type Hist struct {
	counts [histBuckets]uint32
	total  uint64
	sum    uint64 // nanoseconds, for the mean
	min    uint64
	max    uint64
}

const (
	histSubBits = 7
	histHalf    = 1 << (histSubBits - 1) // buckets per power of two
	// histMaxExp bounds the tracked range at 2^(histMaxExp+histSubBits) ns
	// (about 4.9 hours); larger values land in the last bucket, while max
	// stays exact.
	histMaxExp  = 37
	histBuckets = (histMaxExp+1)*histHalf + histHalf
)

// bucketOf returns the bucket index of v nanoseconds.
func bucketOf(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	e := bits.Len64(v) - histSubBits // >= 1
	if e > histMaxExp {
		return histBuckets - 1
	}
	m := v >> uint(e) // in [histHalf, 2*histHalf)
	return e*histHalf + int(m)
}

// bucketRange returns the lowest value of bucket i and its width.
func bucketRange(i int) (lo, width uint64) {
	if i < 1<<histSubBits {
		return uint64(i), 1
	}
	e := i/histHalf - 1
	m := uint64(i%histHalf + histHalf)
	return m << uint(e), 1 << uint(e)
}

// Record adds one value; negative durations count as zero.
func (h *Hist) Record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	h.counts[bucketOf(v)]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.sum += v
}

// Merge adds every value recorded in o.
func (h *Hist) Merge(o *Hist) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// Reset forgets every value.
func (h *Hist) Reset() { *h = Hist{} }

// Count is the number of values recorded.
func (h *Hist) Count() uint64 { return h.total }

// Max is the largest value recorded, exactly.
func (h *Hist) Max() time.Duration { return time.Duration(h.max) }

// Min is the smallest value recorded, exactly.
func (h *Hist) Min() time.Duration { return time.Duration(h.min) }

// Mean is the average of the values recorded.
func (h *Hist) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum / h.total)
}

// Quantile returns the q-quantile (0 <= q <= 1): the value at rank
// ceil(q*count), read at its bucket's midpoint and clamped to the exact
// minimum and maximum.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	if rank < 1 {
		rank = 1
	}
	if rank >= h.total {
		return time.Duration(h.max)
	}
	var seen uint64
	for i := range h.counts {
		seen += uint64(h.counts[i])
		if seen >= rank {
			lo, w := bucketRange(i)
			v := lo + (w-1)/2
			v = max(v, h.min)
			v = min(v, h.max)
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}
