package launch

// Benchmarks of what the SSH launcher costs a host, measured on a loopback
// test host (127.0.0.30, a pid namespace of its own, see startHosts):
// the CPU time of every process there other than the servers (sshd, the
// login shells, the scripts and whatever they fork, the wrappers), and the
// processes created. They need root and sshd, as the tests; run them with
//
//	go test -run '^$' -bench SSH -benchtime 1x ./master/launch/
//
// SHADDOCK_BENCH_WINDOW sets the idle benchmark's window (default 20s).

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// benchHost is the benchmarks' loopback host, none of the tests'.
const benchHost = "127.0.0.30"

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// BenchmarkSSHWatcherIdle: 20 servers run, idle, and are watched; how much
// CPU the host spends on anything but them, in % of one core.
func BenchmarkSSHWatcherIdle(b *testing.B) {
	const n = 20
	window := 20 * time.Second
	if w, err := time.ParseDuration(os.Getenv("SHADDOCK_BENCH_WINDOW")); err == nil {
		window = w
	}
	th := startHosts(b, 30, 1, nil)
	cfg, msgs := th.configMsgs(b)
	l := newTestSSH(b, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute+time.Duration(b.N)*window)
	defer cancel()
	running := msgs.on("ssh watcher running")
	hs := benchStart(b, ctx, l, n, "idle")
	chans := make([]<-chan Exit, n)
	for i, h := range hs {
		chans[i] = l.Wait(h)
	}
	select {
	case <-running:
	case <-time.After(10 * time.Second):
		b.Fatal("the watcher did not start")
	}
	time.Sleep(2 * time.Second) // the start's stragglers end
	b.ResetTimer()
	var total time.Duration
	for range b.N {
		before := th.hostCPU(b, benchHost)
		time.Sleep(window)
		d := th.hostCPU(b, benchHost).sub(before)
		total += d.cpu
		b.Logf("by command line: %v", d.byName)
	}
	b.StopTimer()
	pct := 100 * total.Seconds() / (window.Seconds() * float64(b.N))
	b.ReportMetric(pct, "%core")
	b.Logf("%d watched idle servers: the host's other processes used %s of CPU in %s (%.3f %% of a core)",
		n, total/time.Duration(b.N), window, pct)
	benchKill(b, ctx, l, hs, chans)
}

// BenchmarkSSHStart: 20 servers start at once on one host, as a master
// starts a cluster; per start, the host's CPU time outside the servers and
// the processes created there other than the servers' threads.
func BenchmarkSSHStart(b *testing.B) {
	const n = 20
	th := startHosts(b, 30, 1, nil)
	l := newTestSSH(b, th.config(b))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Connected, and the login's cost out of the way.
	if err := l.Logs(ctx, benchHost, "/proc/version", 1, false, &strings.Builder{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var cpu, wall time.Duration
	var pids int
	for i := range b.N {
		before, last := th.hostCPU(b, benchHost), th.lastPID(b, benchHost)
		t0 := time.Now()
		hs := benchStart(b, ctx, l, n, fmt.Sprintf("start%d", i))
		wall += time.Since(t0)
		time.Sleep(500 * time.Millisecond) // the last wrappers and sessions end
		after, last2 := th.hostCPU(b, benchHost), th.lastPID(b, benchHost)
		d := after.sub(before)
		cpu += d.cpu
		// Every pid allocated since, but lastPID's own and the servers'
		// threads (the first of which is the server's process).
		pids += last2 - last - 1 - after.serverThreads
		b.StopTimer()
		chans := make([]<-chan Exit, n)
		for j, h := range hs {
			chans[j] = l.Wait(h)
		}
		benchKill(b, ctx, l, hs, chans)
		b.StartTimer()
	}
	b.StopTimer()
	starts := float64(n * b.N)
	b.ReportMetric(cpu.Seconds()*1e3/starts, "host-ms/start")
	b.ReportMetric(float64(pids)/starts, "procs/start")
	b.ReportMetric(wall.Seconds()*1e3/float64(b.N), "ms/20-starts")
	b.Logf("per start: %.2f ms of host CPU outside the server, %.1f processes created; %d concurrent starts took %s",
		cpu.Seconds()*1e3/starts, float64(pids)/starts, n, wall/time.Duration(b.N))
}

// benchStart starts n sleepers concurrently on benchHost.
func benchStart(b *testing.B, ctx context.Context, l *SSH, n int, prefix string) []Handle {
	hs := make([]Handle, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { hs[i], errs[i] = l.Start(ctx, sleeperSpec(b, benchHost, fmt.Sprintf("%s-%d", prefix, i))) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return hs
}

// benchKill kills the servers and waits for their ends to be reported.
func benchKill(b *testing.B, ctx context.Context, l *SSH, hs []Handle, chans []<-chan Exit) {
	var wg sync.WaitGroup
	for _, h := range hs {
		wg.Go(func() {
			if err := l.Kill(ctx, h); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	for _, ch := range chans {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			b.Fatal("an end was not reported")
		}
	}
}

// hostUsage is what the processes of a host used so far.
type hostUsage struct {
	byPID         map[string]time.Duration // non-server processes: user+system time, their reaped children's included
	names         map[string]string        // their command lines, shortened
	serverThreads int
	cpu           time.Duration     // set by sub
	byName        map[string]string // set by sub: what each command line used, where it used any
}

// sub is the CPU time used between before and u: what processes alive at
// both ends added, and all that new ones used.
func (u hostUsage) sub(before hostUsage) hostUsage {
	var d time.Duration
	by := map[string]time.Duration{}
	for pid, t := range u.byPID {
		d += t - before.byPID[pid]
		by[u.names[pid]] += t - before.byPID[pid]
	}
	r := hostUsage{cpu: d, serverThreads: u.serverThreads, byName: map[string]string{}}
	for name, t := range by {
		if t > 0 {
			r.byName[name] = t.String()
		}
	}
	return r
}

// hostCPU reads the CPU times of host addr's processes (its pid namespace)
// other than the sleepers.
func (th *testHosts) hostCPU(tb testing.TB, addr string) hostUsage {
	tb.Helper()
	u := hostUsage{byPID: map[string]time.Duration{}, names: map[string]string{}}
	for _, pid := range th.nsPIDs(tb, addr) {
		cmd, err1 := os.ReadFile("/proc/" + pid + "/cmdline")
		stat, err2 := os.ReadFile("/proc/" + pid + "/stat")
		if err1 != nil || err2 != nil {
			continue // gone meanwhile
		}
		if strings.HasPrefix(string(cmd), sleeperBin+"\x00") {
			tasks, _ := os.ReadDir("/proc/" + pid + "/task")
			u.serverThreads += len(tasks)
			continue
		}
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		var ticks int64
		for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime (fields 14-17)
			v, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += v
		}
		u.byPID[pid] = time.Duration(ticks) * time.Second / clockTicks
		name := strings.Join(strings.Fields(strings.ReplaceAll(string(cmd), "\x00", " ")), " ")
		u.names[pid] = name[:min(len(name), 24)]
	}
	return u
}

// nsPIDs lists host addr's processes, by their pids here.
func (th *testHosts) nsPIDs(tb testing.TB, addr string) []string {
	tb.Helper()
	u, err := os.ReadFile(filepath.Join(th.dir, addr+".pid"))
	if err != nil {
		tb.Fatal(err)
	}
	ns, err := os.Readlink("/proc/" + strings.TrimSpace(string(u)) + "/ns/pid_for_children")
	if err != nil {
		tb.Fatal(err)
	}
	var pids []string
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if l, err := os.Readlink("/proc/" + d.Name() + "/ns/pid"); err == nil && l == ns {
			pids = append(pids, d.Name())
		}
	}
	return pids
}

// lastPID is the last pid allocated in host addr's pid namespace (the
// reading process's own).
func (th *testHosts) lastPID(tb testing.TB, addr string) int {
	tb.Helper()
	pids := th.nsPIDs(tb, addr)
	if len(pids) == 0 {
		tb.Fatalf("no process in host %s", addr)
	}
	out, err := exec.Command("nsenter", "-t", pids[0], "-p", "cat", "/proc/sys/kernel/ns_last_pid").Output()
	if err != nil {
		tb.Fatalf("nsenter: %v", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		tb.Fatal(err)
	}
	return n
}
