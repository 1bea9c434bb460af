package lograte

import (
	"sync"
	"testing"
	"time"
)

func TestAllowOncePerIntervalAndCount(t *testing.T) {
	now := time.Now()
	l := &Limiter{Every: time.Hour, Now: func() time.Time { return now }}
	if ok, n := l.Allow(); !ok || n != 0 {
		t.Fatalf("first event: %v, %d", ok, n)
	}
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if ok, _ := l.Allow(); ok {
				t.Error("a second event within the interval was let in")
			}
		})
	}
	wg.Wait()
	now = now.Add(time.Hour) // the interval has passed
	if ok, n := l.Allow(); !ok || n != 100 {
		t.Fatalf("after the interval: %v, %d suppressed; want true, 100", ok, n)
	}
	if ok, _ := l.Allow(); ok {
		t.Fatal("the interval starts again at the event let in")
	}
}
