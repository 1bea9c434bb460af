package routines

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitWaitsForEveryGoroutine(t *testing.T) {
	var g Group
	release := make(chan struct{})
	var finished atomic.Int64
	for range 100 {
		if !g.Go(func() { <-release; finished.Add(1) }) {
			t.Fatal("Go refused before Close")
		}
	}
	if n := g.Running(); n != 100 {
		t.Fatalf("running %d, want 100", n)
	}
	waited := make(chan struct{})
	go func() { g.Wait(); close(waited) }()
	for deadline := time.Now().Add(5 * time.Second); !g.Closed(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Wait did not close the group")
		}
	}
	select {
	case <-waited:
		t.Fatal("Wait returned while goroutines ran")
	case <-time.After(50 * time.Millisecond):
	}
	if g.Go(func() {}) {
		t.Fatal("Go started a goroutine after Wait closed the group")
	}
	close(release)
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return")
	}
	if finished.Load() != 100 || g.Running() != 0 {
		t.Fatalf("finished %d, running %d", finished.Load(), g.Running())
	}
	g.Wait() // again: returns at once
}

func TestGoroutinesMayStartGoroutinesUntilClosed(t *testing.T) {
	var g Group
	var ran atomic.Int64
	links := make(chan struct{}, 100)
	var chain func(n int)
	chain = func(n int) {
		ran.Add(1)
		links <- struct{}{}
		if n > 0 && !g.Go(func() { chain(n - 1) }) {
			links <- struct{}{} // refused: the chain ends here
		}
	}
	g.Go(func() { chain(50) })
	for range 51 {
		<-links
	}
	g.Wait()
	if ran.Load() != 51 {
		t.Fatalf("chain ran %d links, want 51", ran.Load())
	}

	// A chain that meets Close ends, and Wait returns.
	var g2 Group
	stop := make(chan struct{})
	var loop func()
	loop = func() {
		select {
		case <-stop:
		case <-time.After(time.Millisecond):
		}
		g2.Go(loop)
	}
	g2.Go(loop)
	time.Sleep(10 * time.Millisecond)
	close(stop)
	g2.Wait()
	if g2.Running() != 0 {
		t.Fatalf("%d still running", g2.Running())
	}
}

func TestCloseWithNothingRunning(t *testing.T) {
	var g Group
	g.Close()
	g.Close()
	if !g.Closed() || g.Go(func() {}) {
		t.Fatal("closed group started a goroutine")
	}
	done := make(chan struct{})
	go func() { g.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait on an idle closed group blocked")
	}
}

func BenchmarkGo(b *testing.B) {
	var g Group
	done := make(chan struct{}, 1)
	for b.Loop() {
		g.Go(func() { done <- struct{}{} })
		<-done
	}
	g.Wait()
}
