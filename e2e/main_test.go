package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// binaries are the commands the tests start, built once by TestMain. Add a
// line here to make another command available to StartProc by name.
var binaries = []struct{ name, pkg string }{
	{"echo", "./examples/echo"},
	{"chat", "./examples/chat"},
	{"master", "./cmd/master"},
	{"hello", "./examples/hello"},
}

var (
	repoRoot string // module root: the parent of this package's directory
	binDir   string // where TestMain put the binaries
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if repoRoot, err = filepath.Abs(".."); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if binDir, err = os.MkdirTemp("", "shaddock-e2e-bin-"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	if err := buildBinaries(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

// buildBinaries builds every command in binaries into binDir. They are built
// without -race: the figures the tests measure (RSS) would mean little
// under the race detector's shadow memory.
func buildBinaries() error {
	for _, b := range binaries {
		cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, b.name), b.pkg)
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", b.pkg, err, out)
		}
	}
	return nil
}

// binPath returns the path of a command built by TestMain.
func binPath(name string) string { return filepath.Join(binDir, name) }
