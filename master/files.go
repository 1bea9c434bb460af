package master

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/master/launch"
	"github.com/shaddock/shaddock/proto/masterpb"
)

// Paths are the directories a master keeps its files in.
type Paths struct {
	RunDir string // secret, token, state file, pid file
	LogDir string // servers' logs and the daemon master's log
}

// DefaultPaths are run/ and logs/ beside the config file.
func DefaultPaths(configPath string) Paths {
	dir := filepath.Dir(configPath)
	return Paths{RunDir: filepath.Join(dir, "run"), LogDir: filepath.Join(dir, "logs")}
}

// SecretFile is the cluster secret's file.
func (p Paths) SecretFile(env string) string { return filepath.Join(p.RunDir, env+".secret") }

// TokenFile is the admin token's file.
func (p Paths) TokenFile(env string) string { return filepath.Join(p.RunDir, env+".token") }

// StateFile records the pids of the servers the master runs.
func (p Paths) StateFile(env string) string { return filepath.Join(p.RunDir, env+".state.json") }

// AppliedConfig is the master's copy of the servers.toml it runs: written
// at start and by each reload that applies, it is the file the master's
// local servers read (a server restarted while servers.toml is being
// edited starts from what the cluster runs, not from a half-made edit),
// the one uploaded to remote hosts, and the one the CLI falls back on to
// reach the master when servers.toml does not parse.
func (p Paths) AppliedConfig(env string) string { return filepath.Join(p.RunDir, env+".applied.toml") }

// PidFile holds the master's pid and is locked while the master runs.
func (p Paths) PidFile(env string) string { return filepath.Join(p.RunDir, env+".master.pid") }

// ServerLog is a server's stdout and stderr.
func (p Paths) ServerLog(id string) string { return filepath.Join(p.LogDir, id+".log") }

// MasterLog is a daemon master's stdout and stderr.
func (p Paths) MasterLog(env string) string { return filepath.Join(p.LogDir, "master-"+env+".log") }

var errLocked = errors.New("locked by another process")

// ErrNotRunning is returned when no master runs for the environment.
var ErrNotRunning = errors.New("master is not running")

// MasterPID returns the pid of the master running for env, or ErrNotRunning
// (wrapped, with the file it looked at) when none does.
func (p Paths) MasterPID(env string) (int, error) {
	path := p.PidFile(env)
	held, err := locked(path)
	if err != nil {
		return 0, fmt.Errorf("check %s: %w", path, err)
	}
	if !held {
		return 0, fmt.Errorf("%w for env %s (no live master holds %s)", ErrNotRunning, env, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		// Locked but not written yet: a master is starting.
		return 0, nil
	}
	return pid, nil
}

// randomHex returns n random bytes, hex-encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// loadOrCreateSecret returns the cluster secret, creating it the first time.
// It is kept across master restarts: running servers hold it.
func loadOrCreateSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) != 64 {
			return "", fmt.Errorf("read cluster secret %s: want 64 hex digits, found %d characters", path, len(s))
		}
		if _, err := hex.DecodeString(s); err != nil {
			return "", fmt.Errorf("read cluster secret %s: %w", path, err)
		}
		return s, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read cluster secret: %w", err)
	}
	s := randomHex(32)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("create cluster secret: %w", err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("write cluster secret %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write cluster secret %s: %w", path, err)
	}
	return s, nil
}

// writeFileAtomic replaces path with data (mode 0600) in one rename, so a
// reader never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// readToken returns the admin token of the master running for env.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("read admin token: %s is empty", path)
	}
	return t, nil
}

// State is what a master records about the processes it runs, so that the
// next master re-adopts them instead of starting second copies.
type State struct {
	Env     string                `json:"env"`
	Servers map[string]StateEntry `json:"servers"` // running instances, by server id
	// Epochs is the last epoch given to each server id, running or not, so
	// that the next master's instances have higher ones.
	Epochs map[string]uint64 `json:"epochs,omitempty"`
	// Added are the servers `master add` added (not in servers.toml), and
	// Removed the ids `master remove` took out: a new master keeps both
	// until a reload.
	Added   map[string]config.Server `json:"added,omitempty"`
	Removed []string                 `json:"removed,omitempty"`
}

// StateEntry is one running instance: its launcher's handle and epoch,
// and what it said of itself when it last registered.
type StateEntry struct {
	Handle launch.Handle `json:"handle"`
	Epoch  uint64        `json:"epoch"`
	Member *StateMember  `json:"member,omitempty"`
}

// StateMember is a server's registration as the state file keeps it, so
// that a new master can publish it before the server has re-registered.
type StateMember struct {
	Type       string    `json:"type"`
	Host       string    `json:"host"`
	Port       int32     `json:"port"`
	ClientHost string    `json:"client_host,omitempty"`
	ClientPort int32     `json:"client_port,omitempty"`
	Frontend   bool      `json:"frontend,omitempty"`
	Group      string    `json:"group,omitempty"`
	PID        int32     `json:"pid"`
	Build      string    `json:"build,omitempty"`
	Started    time.Time `json:"started"`
	Epoch      uint64    `json:"epoch"`
}

func stateMember(i *masterpb.ServerInfo) *StateMember {
	if i == nil {
		return nil
	}
	return &StateMember{Type: i.GetType(), Host: i.GetHost(), Port: i.GetPort(), ClientHost: i.GetClientHost(),
		ClientPort: i.GetClientPort(), Frontend: i.GetFrontend(), Group: i.GetGroup(), PID: i.GetPid(),
		Build: i.GetBuild(), Started: time.UnixMilli(i.GetStartedUnixMs()), Epoch: i.GetEpoch()}
}

func (s *StateMember) info(id string) *masterpb.ServerInfo {
	if s == nil {
		return nil
	}
	return &masterpb.ServerInfo{Id: id, Type: s.Type, Host: s.Host, Port: s.Port, ClientHost: s.ClientHost,
		ClientPort: s.ClientPort, Frontend: s.Frontend, Group: s.Group, Pid: s.PID, Build: s.Build,
		StartedUnixMs: s.Started.UnixMilli(), Epoch: s.Epoch}
}

// readState reads a state file; a missing file is an empty state.
func readState(path string) (State, error) {
	st := State{Servers: map[string]StateEntry{}, Epochs: map[string]uint64{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read state %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return State{Servers: map[string]StateEntry{}, Epochs: map[string]uint64{}}, fmt.Errorf("read state %s: %w", path, err)
	}
	if st.Servers == nil {
		st.Servers = map[string]StateEntry{}
	}
	if st.Epochs == nil {
		st.Epochs = map[string]uint64{}
	}
	return st, nil
}

// writeState replaces the state file.
func writeState(path string, st State) error {
	if st.Servers == nil {
		st.Servers = map[string]StateEntry{}
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := writeFileAtomic(path, append(b, '\n')); err != nil {
		return fmt.Errorf("write state %s: %w", path, err)
	}
	return nil
}
