// Package leakcheck fails a test binary whose tests leave goroutines
// running: goroutines with a frame in this module or in gRPC (a connection
// nobody closed) that are still there a few seconds after the last test.
// Each package whose code starts goroutines calls Main from its TestMain.
//
// It is a test helper, not for production code.
package leakcheck

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Main runs the tests and then checks for leaked goroutines; use it as
// TestMain's body: os.Exit(leakcheck.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if code != 0 {
		return code
	}
	if leaked := Wait(10 * time.Second); leaked != "" {
		fmt.Fprintf(os.Stderr, "leakcheck: goroutines still running after the tests:\n\n%s\n", leaked)
		return 1
	}
	return 0
}

// markers select the goroutines that count: those running code of this
// module or of gRPC.
var markers = []string{"github.com/shaddock/shaddock/", "google.golang.org/grpc"}

// Wait polls until no counted goroutine runs, and returns "" then, or their
// stacks after timeout.
func Wait(timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for {
		leaked := Leaked()
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Leaked returns the stacks of the counted goroutines running now, other
// than the caller's.
func Leaked() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for i, g := range bytes.Split(buf, []byte("\n\n")) {
		if i == 0 {
			continue // the caller: runtime.Stack lists it first
		}
		s := string(g)
		if strings.Contains(s, "testing.(*M).Run(") || strings.Contains(s, "testing.(*T).Run(") {
			continue // the test binary's main goroutine, or a test waiting for its subtests
		}
		for _, m := range markers {
			if strings.Contains(s, m) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}
