package workpool

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPoolRunsEveryTaskAndWorkersExit(t *testing.T) {
	p := New(20 * time.Millisecond)
	var n atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		p.Go(func() { n.Add(1); wg.Done() })
	}
	wg.Wait()
	if n.Load() != 1000 {
		t.Fatalf("ran %d tasks", n.Load())
	}
	done := make(chan struct{})
	go func() { p.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("idle workers did not exit")
	}
}

func TestPoolReusesIdleWorker(t *testing.T) {
	p := New(time.Hour)
	defer p.Close()
	for i := 0; i < 100; i++ {
		done := make(chan struct{})
		p.Go(func() { close(done) })
		<-done
		// The worker puts itself back on the idle stack after the task.
		waitIdle(t, p, 1)
	}
}

func waitIdle(t *testing.T, p *Pool, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		p.mu.Lock()
		idle := len(p.idle)
		p.mu.Unlock()
		if idle == n {
			return
		}
		if idle > n || time.Now().After(deadline) {
			t.Fatalf("%d idle workers, want %d", idle, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Workers idle for a whole period retire; one used meanwhile stays.
func TestPoolRetiresOnlyIdleWorkers(t *testing.T) {
	p := New(30 * time.Millisecond)
	defer p.Close()
	release := make(chan struct{})
	var started sync.WaitGroup
	for i := 0; i < 3; i++ {
		started.Add(1)
		p.Go(func() { started.Done(); <-release })
	}
	started.Wait()
	close(release)
	waitIdle(t, p, 3)
	// Keep one worker busy every few milliseconds: it is never idle for a
	// period, so it stays while the other two retire.
	stop := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(stop) {
		done := make(chan struct{})
		p.Go(func() { close(done) })
		<-done
		time.Sleep(2 * time.Millisecond)
	}
	waitIdle(t, p, 1)
}

func TestPoolBlockingTasksDoNotStarveOthers(t *testing.T) {
	p := New(time.Second)
	release := make(chan struct{})
	for i := 0; i < 100; i++ {
		p.Go(func() { <-release })
	}
	ran := make(chan struct{})
	p.Go(func() { close(ran) })
	select {
	case <-ran:
	case <-time.After(2 * time.Second):
		t.Fatal("task starved behind blocked workers")
	}
	close(release)
}

func TestPoolCloseReleasesIdleWorkers(t *testing.T) {
	p := New(time.Hour)
	done := make(chan struct{})
	p.Go(func() { close(done) })
	<-done
	p.Close()
	p.Close() // idempotent
	waited := make(chan struct{})
	go func() { p.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(2 * time.Second):
		t.Fatal("idle worker outlived Close")
	}
	ran := make(chan struct{})
	p.Go(func() { close(ran) })
	<-ran
}

// BenchmarkHandOff is the hot path: a task handed to an idle worker, the
// caller waiting for it, as a connector's reader hands a session's message
// to its dispatch worker.
func BenchmarkHandOff(b *testing.B) {
	p := New(time.Minute)
	defer p.Close()
	done := make(chan struct{}, 1)
	task := func() { done <- struct{}{} }
	b.ReportAllocs()
	for b.Loop() {
		p.Go(task)
		<-done
	}
}
