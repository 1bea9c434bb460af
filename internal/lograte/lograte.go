// Package lograte keeps log lines about repeated events (refused calls,
// failing requests) from flooding the log: at most one line per interval,
// which says how many it stands for.
package lograte

import (
	"sync"
	"time"
)

// Limiter lets one event in per Every; the zero value with Every set is
// ready to use, and safe for concurrent use.
type Limiter struct {
	Every time.Duration
	Now   func() time.Time // the clock; nil is time.Now (tests set their own)

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// Allow reports whether this event may be logged, and if so how many
// events were not logged since the last one that was.
func (l *Limiter) Allow() (ok bool, suppressed int) {
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.Every {
		l.suppressed++
		return false, 0
	}
	l.last = now
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}
