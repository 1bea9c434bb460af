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
	p := New(time.Second)
	started := make(chan struct{})
	p.Go(func() { close(started) })
	<-started
	// Give the worker time to park on the task channel, then hand it a task:
	// it must take it rather than a new goroutine being started.
	deadline := time.Now().Add(2 * time.Second)
	for {
		select {
		case p.tasks <- func() {}:
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no idle worker took the task")
		}
		time.Sleep(time.Millisecond)
	}
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
