// Command wsbench-report turns the RESULT lines printed by wsbench-client
// (read from stdin) into Markdown tables: for every metric the median over
// repetitions, followed by the individual runs in brackets when there are
// several.
package main

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

type run map[string]string

func main() {
	var idle, echo []run
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "RESULT" {
			continue
		}
		r := run{}
		for _, kv := range f[2:] {
			if k, v, ok := strings.Cut(kv, "="); ok {
				r[k] = v
			}
		}
		switch f[1] {
		case "idle":
			idle = append(idle, r)
		case "echo":
			echo = append(echo, r)
		}
	}

	fmt.Println("### Idle connections")
	fmt.Println()
	fmt.Println("| candidate | n | RSS B/conn (settled) | RSS B/conn (after GC) | heap B/conn | stack B/conn | goroutines/conn |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, impl := range order(idle) {
		rs := filter(idle, func(r run) bool { return r["impl"] == impl })
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s |\n", impl, med(rs, "n", 0),
			med(rs, "rss_per_conn", 0), med(rs, "rss_per_conn_gc", 0),
			med(rs, "heap_per_conn_gc", 0), med(rs, "stack_per_conn", 0), med(rs, "goroutines_per_conn", 2))
	}

	for _, c := range order2(echo, "c") {
		fmt.Println()
		fmt.Printf("### Echo, %s connections, 64-byte messages\n\n", c)
		fmt.Println("| candidate | round trips/s | p50 µs | p99 µs | server CPU µs/round trip | server allocs/round trip | server B alloc/round trip | load avg |")
		fmt.Println("|---|---|---|---|---|---|---|---|")
		for _, impl := range order(echo) {
			rs := filter(echo, func(r run) bool { return r["impl"] == impl && r["c"] == c })
			if len(rs) == 0 {
				continue
			}
			fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", impl, med(rs, "rps", 0),
				med(rs, "p50_us", 0), med(rs, "p99_us", 0), med(rs, "srv_cpu_us_per_rt", 1),
				med(rs, "srv_allocs_per_rt", 2), med(rs, "srv_alloc_bytes_per_rt", 0), med(rs, "load1", 1))
		}
	}
}

// order lists impl labels in order of first appearance.
func order(rs []run) []string { return order2(rs, "impl") }

func order2(rs []run, key string) []string {
	var out []string
	for _, r := range rs {
		if !slices.Contains(out, r[key]) {
			out = append(out, r[key])
		}
	}
	return out
}

func filter(rs []run, keep func(run) bool) []run {
	var out []run
	for _, r := range rs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// med formats the median of key over rs, then the runs if more than one.
func med(rs []run, key string, prec int) string {
	var vs []float64
	for _, r := range rs {
		if v, err := strconv.ParseFloat(r[key], 64); err == nil {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return "–"
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	s := slices.Clone(vs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	if len(vs) == 1 {
		return f(m)
	}
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = f(v)
	}
	return f(m) + " (" + strings.Join(parts, ", ") + ")"
}
