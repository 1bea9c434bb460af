package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Latency summarises a histogram, in milliseconds.
type Latency struct {
	Count  uint64  `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func summarize(h *Hist) Latency {
	return Latency{
		Count:  h.Count(),
		MeanMs: ms(h.Mean()),
		P50Ms:  ms(h.Quantile(0.50)),
		P90Ms:  ms(h.Quantile(0.90)),
		P99Ms:  ms(h.Quantile(0.99)),
		P999Ms: ms(h.Quantile(0.999)),
		MaxMs:  ms(h.Max()),
	}
}

// String is the one-line form used in summaries.
func (l Latency) String() string {
	if l.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p999 %s  max %s ms  (mean %s, n=%d)",
		fmtMs(l.P50Ms), fmtMs(l.P90Ms), fmtMs(l.P99Ms), fmtMs(l.P999Ms), fmtMs(l.MaxMs), fmtMs(l.MeanMs), l.Count)
}

// fmtMs prints milliseconds with three significant digits or so.
func fmtMs(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// fmtCount prints an integer with thousands separators.
func fmtCount[T ~int | ~int64 | ~uint64](n T) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30 || n <= -1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20 || n <= -1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 || n <= -1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// writeCPU prints the CPU lines of a summary.
func writeCPU(w io.Writer, c *CPUReport) {
	if c == nil {
		return
	}
	if len(c.Servers) > 0 {
		var parts []string
		for _, s := range c.Servers {
			if s.Seconds < 0 {
				parts = append(parts, fmt.Sprintf("%s(%d) gone", s.Name, s.Pid))
			} else {
				parts = append(parts, fmt.Sprintf("%s %.2f", s.Name, s.Seconds))
			}
		}
		fmt.Fprintf(w, "  server CPU     %.2f s over %.1f s = %.0f%% of a core, %.1f µs per request  [%s]\n",
			c.ServerSeconds, c.WindowSeconds, c.ServerPct, c.ServerUSPerReq, strings.Join(parts, ", "))
	}
	fmt.Fprintf(w, "  robot CPU      %.2f s = %.0f%% of a core, %.1f µs per request (decoding every push)\n",
		c.RobotSeconds, c.RobotPct, c.RobotUSPerReq)
	fmt.Fprintf(w, "  machine CPU    %.0f%% busy of %d00%%; other processes %.0f%%\n", c.MachinePct, c.Cores, c.OtherPct)
}

func writeErrors(w io.Writer, errs []ErrorKind) {
	if len(errs) == 0 {
		fmt.Fprintf(w, "  errors         0\n")
		return
	}
	var n int64
	for _, e := range errs {
		n += e.Count
	}
	fmt.Fprintf(w, "  errors         %s\n", fmtCount(n))
	for _, e := range errs {
		if e.Example != "" {
			fmt.Fprintf(w, "    %8s  %s  (e.g. %s)\n", fmtCount(e.Count), e.Kind, e.Example)
		} else {
			fmt.Fprintf(w, "    %8s  %s\n", fmtCount(e.Count), e.Kind)
		}
	}
}

// writeJSON writes v to path, or to stdout for "-".
func writeJSON(path string, stdout io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = stdout.Write(b)
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write -json %s: %w", path, err)
	}
	return nil
}
