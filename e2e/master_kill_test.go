package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestMasterKill9DuringTraffic: the master is the control plane only, so
// killing it with SIGKILL while clients chat fails no request, and a new
// master adopts the running servers (same pids) instead of starting more.
func TestMasterKill9DuringTraffic(t *testing.T) {
	cl := StartChatCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var users []*chatUser
	for i := 0; i < 20; i++ {
		u, r := login(t, ctx, cl, fmt.Sprintf("k%02d", i), fmt.Sprintf("room-%d", i%4), i%2 == 0)
		if r.Code != 0 || len(r.Users) == 0 {
			t.Fatalf("login %d: %+v", i, r)
		}
		users = append(users, u)
	}
	before := cl.Pids()

	// Closed-loop traffic from every user until told to stop.
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
				err := u.send(rctx, fmt.Sprintf("%s-%d", u.name, n), "*")
				rcancel()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				} else {
					ok.Add(1)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	waitSends := func(n int64) {
		t.Helper()
		target := ok.Load() + n
		eventually(t, "traffic flowing", func() error {
			if ok.Load() < target {
				return fmt.Errorf("%d sends so far", ok.Load())
			}
			return nil
		})
	}
	waitSends(200)

	pidFile := filepath.Join(cl.Dir, "run", "development.master.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	masterPid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err := syscall.Kill(masterPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "master gone", func() error {
		if alive(masterPid) {
			return fmt.Errorf("pid %d alive", masterPid)
		}
		return nil
	})
	sentBefore := ok.Load()
	waitSends(200) // the cluster serves on without its master
	if out, err := cl.Master(10*time.Second, "list"); err == nil {
		t.Fatalf("master list succeeded with the master dead:\n%s", out)
	}

	if out, err := cl.Master(90*time.Second, "start", "--daemon"); err != nil {
		t.Fatalf("restart master: %v\n%s", err, out)
	}
	after := cl.Pids()
	if !maps.Equal(before, after) {
		t.Fatalf("servers not re-adopted: pids before %v, after %v", before, after)
	}
	for _, s := range cl.List().Servers {
		if s.Restarts != 0 {
			t.Fatalf("%s restarted %d times", s.Info.Id, s.Restarts)
		}
	}
	waitSends(200)
	close(stop)
	wg.Wait()

	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed; first: %v", n, n+ok.Load(), firstErr.Load())
	}
	t.Logf("%d requests, %d of them while the master was down or restarting, none failed; pids kept: %v",
		ok.Load(), ok.Load()-sentBefore, after)
	// Pushes kept flowing: each user saw its own latest broadcast.
	for _, u := range users {
		if len(u.received(func(p userPush) bool { return p.Route == "onChat" })) == 0 {
			t.Fatalf("%s received no broadcasts", u.name)
		}
	}
}
