package deadline

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDeadlineFiresDoneOnlyWhenWatched(t *testing.T) {
	c, cancel := WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if c.timer != nil {
		t.Fatal("timer made before Done was called")
	}
	if err := c.Err(); err != nil {
		t.Fatalf("early Err = %v", err)
	}
	select {
	case <-c.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("Done not closed at the deadline")
	}
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err = %v", c.Err())
	}
}

func TestErrWithoutDoneFollowsTheClock(t *testing.T) {
	c, cancel := WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	time.Sleep(20 * time.Millisecond)
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err = %v", c.Err())
	}
	if _, ok := <-c.Done(); ok {
		t.Fatal("Done open after the deadline")
	}
}

func TestCancelAndParent(t *testing.T) {
	c, cancel := WithTimeout(context.Background(), time.Hour)
	done := c.Done()
	cancel()
	<-done
	if !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("Err after cancel = %v", c.Err())
	}

	parent, pcancel := context.WithCancel(context.Background())
	c, cancel = WithTimeout(parent, time.Hour)
	defer cancel()
	pcancel()
	if !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("Err after parent cancel, before Done = %v", c.Err())
	}
	parent, pcancel = context.WithCancel(context.Background())
	c, cancel = WithTimeout(parent, time.Hour)
	defer cancel()
	done = c.Done()
	pcancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("parent cancel did not reach Done")
	}
	// Derived standard contexts see the deadline and the cancellation.
	parentD, cancelD := WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancelD()
	child, ccancel := context.WithCancel(parentD)
	defer ccancel()
	if d, ok := child.Deadline(); !ok || time.Until(d) > time.Second {
		t.Fatalf("child deadline %v %v", d, ok)
	}
	select {
	case <-child.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("child not cancelled at the parent's deadline")
	}
}

func TestEarlierParentDeadlineWins(t *testing.T) {
	parent, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, ccancel := WithTimeout(parent, time.Hour)
	defer ccancel()
	if d, _ := c.Deadline(); time.Until(d) > 2*time.Second {
		t.Fatalf("deadline %v ignores the parent's", d)
	}
}

func BenchmarkWithTimeoutUnwatched(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		c, cancel := WithTimeout(context.Background(), time.Second)
		_, _ = c.Deadline()
		cancel()
	}
}

func BenchmarkStdlibWithTimeout(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = c.Deadline()
		cancel()
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	parent, stop := context.WithTimeout(context.Background(), time.Hour)
	defer stop()
	c := Timeout(parent, 2*time.Hour)
	if pd, _ := parent.Deadline(); !c.deadline.Equal(pd) {
		t.Fatalf("deadline %v, want the parent's earlier %v", c.deadline, pd)
	}
	if c.Err() != nil {
		t.Fatalf("early Err = %v", c.Err())
	}
	done := c.Done()
	c.Cancel()
	select {
	case <-done:
	default:
		t.Fatal("Done not closed by Cancel")
	}
	if !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("Err = %v", c.Err())
	}
	if n := testing.AllocsPerRun(100, func() { Timeout(parent, time.Second).Cancel() }); n > 1 {
		t.Fatalf("%v allocations per Timeout and Cancel, want 1", n)
	}
}
