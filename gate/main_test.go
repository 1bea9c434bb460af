package gate

import (
	"os"
	"testing"

	"github.com/shaddock/shaddock/internal/leakcheck"
)

// TestMain fails the package's tests if they leave goroutines running.
func TestMain(m *testing.M) { os.Exit(leakcheck.Main(m)) }
