package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is sysconf(_SC_CLK_TCK), the unit of utime and stime in
// /proc/PID/stat. It is 100 on every Linux architecture Go supports (the
// kernel's USER_HZ), and reading it would need cgo, so it is hardcoded.
const clockTicks = 100

// procCPU returns the user+system CPU time process pid has used, from
// /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces or
	// parentheses itself: count fields from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime %q %q", pid, f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// procRSS returns the resident set size of process pid (VmRSS in
// /proc/PID/status), in bytes.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc/%d/status: VmRSS %q", pid, rest)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status: VmRSS %q", pid, rest)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS (a kernel thread or a zombie?)", pid)
}

// procName is the process's command name, for the report.
func procName(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// selfCPU is the robot's own user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// watchedPid is one process whose CPU the robot accounts for.
type watchedPid struct {
	Pid  int    `json:"pid"`
	Name string `json:"name"` // pid file name without .pid, else the command name

	start time.Duration
	ok    bool
}

// resolvePids turns -cpu-pids ("PID PID ..." or comma-separated, each
// optionally NAME=PID to name it in the report) and
// -cpu-pidfiles (a glob of files holding one pid each) into a list without
// duplicates.
func resolvePids(pids, glob string) ([]*watchedPid, error) {
	seen := map[int]bool{}
	var out []*watchedPid
	addPid := func(pid int, name string) {
		if !seen[pid] {
			seen[pid] = true
			out = append(out, &watchedPid{Pid: pid, Name: name})
		}
	}
	for f := range strings.FieldsFuncSeq(pids, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' || r == '\n' }) {
		name, num, named := strings.Cut(f, "=")
		if !named {
			num = f
		}
		pid, err := strconv.Atoi(num)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("-cpu-pids: %q is not a pid (PID or NAME=PID)", f)
		}
		if !named {
			name = procName(pid)
		}
		addPid(pid, name)
	}
	if glob != "" {
		files, err := filepath.Glob(glob)
		if err != nil {
			return nil, fmt.Errorf("-cpu-pidfiles %q: %w", glob, err)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("-cpu-pidfiles %q matches no file", glob)
		}
		sort.Strings(files)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				return nil, fmt.Errorf("-cpu-pidfiles: %w", err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || pid <= 0 {
				return nil, fmt.Errorf("-cpu-pidfiles: %s does not hold a pid", file)
			}
			addPid(pid, strings.TrimSuffix(filepath.Base(file), ".pid"))
		}
	}
	return out, nil
}

// machineCPU returns the busy and total CPU time of the whole machine, from
// the first line of /proc/stat (in clock ticks; busy excludes idle and
// iowait).
func machineCPU() (busy, total time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var sum, idle uint64
	// user nice system idle iowait irq softirq steal (guest time is already
	// counted in user).
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %q", line)
		}
		sum += n
		if i == 3 || i == 4 {
			idle += n
		}
	}
	return time.Duration(sum-idle) * time.Second / clockTicks, time.Duration(sum) * time.Second / clockTicks, nil
}

// cpuMeter measures the CPU of the watched processes and of the robot over
// the measured window.
type cpuMeter struct {
	pids       []*watchedPid
	robotStart time.Duration
	wallStart  time.Time
	busyStart  time.Duration
	machineOK  bool
}

func (m *cpuMeter) begin() {
	for _, p := range m.pids {
		var err error
		p.start, err = procCPU(p.Pid)
		p.ok = err == nil
	}
	m.robotStart = selfCPU()
	var err error
	m.busyStart, _, err = machineCPU()
	m.machineOK = err == nil
	m.wallStart = time.Now()
}

// CPUReport is the CPU used during the measured window.
type CPUReport struct {
	WindowSeconds float64 `json:"window_s"`
	// Servers lists the watched processes; Seconds is -1 for one that could
	// not be read at both ends (it exited).
	Servers []PidCPU `json:"servers,omitempty"`
	// ServerSeconds is the sum over Servers; ServerPct is per core (100 =
	// one core busy); ServerPer10k is CPU seconds per 10,000 requests.
	ServerSeconds float64 `json:"server_cpu_s"`
	ServerPct     float64 `json:"server_cpu_pct"`
	ServerPer10k  float64 `json:"server_cpu_s_per_10k_req"`
	RobotSeconds  float64 `json:"robot_cpu_s"`
	RobotPct      float64 `json:"robot_cpu_pct"`
	RobotPer10k   float64 `json:"robot_cpu_s_per_10k_req"`
	// The same per request, in microseconds: the figure before/after
	// comparisons quote (issue 9).
	ServerUSPerReq float64 `json:"server_cpu_us_per_req"`
	RobotUSPerReq  float64 `json:"robot_cpu_us_per_req"`
	// MachinePct is the whole machine's busy CPU (100 = one core) and
	// OtherPct the part neither the watched servers nor the robot used: other
	// load on a shared machine skews the figures.
	MachinePct float64 `json:"machine_cpu_pct"`
	OtherPct   float64 `json:"other_cpu_pct"`
	Cores      int     `json:"cores"`
}

// PidCPU is one watched process's share.
type PidCPU struct {
	Pid     int     `json:"pid"`
	Name    string  `json:"name"`
	Seconds float64 `json:"cpu_s"`
}

// end reads the counters again at the end of the window.
func (m *cpuMeter) end() *CPUReport {
	wall := time.Since(m.wallStart)
	r := &CPUReport{WindowSeconds: wall.Seconds()}
	r.RobotSeconds = (selfCPU() - m.robotStart).Seconds()
	for _, p := range m.pids {
		pc := PidCPU{Pid: p.Pid, Name: p.Name, Seconds: -1}
		if now, err := procCPU(p.Pid); err == nil && p.ok {
			pc.Seconds = (now - p.start).Seconds()
			r.ServerSeconds += pc.Seconds
		}
		r.Servers = append(r.Servers, pc)
	}
	r.Cores = runtime.NumCPU()
	if wall > 0 {
		r.ServerPct = 100 * r.ServerSeconds / wall.Seconds()
		r.RobotPct = 100 * r.RobotSeconds / wall.Seconds()
		if busy, _, err := machineCPU(); err == nil && m.machineOK {
			r.MachinePct = 100 * (busy - m.busyStart).Seconds() / wall.Seconds()
			r.OtherPct = max(0, r.MachinePct-r.ServerPct-r.RobotPct)
		}
	}
	return r
}

// perRequests fills the per-10k-requests figures once the window's
// request count is known, and returns r.
func (r *CPUReport) perRequests(requests int64) *CPUReport {
	if requests > 0 {
		r.ServerPer10k = r.ServerSeconds * 1e4 / float64(requests)
		r.RobotPer10k = r.RobotSeconds * 1e4 / float64(requests)
		r.ServerUSPerReq = r.ServerSeconds * 1e6 / float64(requests)
		r.RobotUSPerReq = r.RobotSeconds * 1e6 / float64(requests)
	}
	return r
}
