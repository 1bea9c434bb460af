package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// DriverSSH is the Driver of handles made by [SSH].
const DriverSSH = "ssh"

// SSHConfig configures an [SSH] launcher (servers.toml's [ENV.ssh]).
type SSHConfig struct {
	User         string        // "" → the current user's name
	Port         int           // 0 → 22
	IdentityFile string        // private key, "~/" expanded; "" → the agent's keys only
	KnownHosts   string        // "~/" expanded; "" → ~/.ssh/known_hosts; must exist
	AgentSocket  string        // ssh-agent's socket; "" → $SSH_AUTH_SOCK (none if unset)
	DialTimeout  time.Duration // bounds TCP connect, handshake and login together; 0 → 5s
	KeepAlive    time.Duration // keepalive interval, and how long a reply may take; 0 → 3s
	Logger       *slog.Logger  // nil → slog.Default()
}

// SSH starts servers on other hosts over SSH (golang.org/x/crypto/ssh).
//
// It keeps one connection per host, dialed on first use and again after
// it breaks, shared by every session to that host; keepalives find a host
// that stopped answering within two KeepAlive intervals, and every session
// on its connection then fails. Host keys must be in known_hosts: an
// unknown or changed key is an error (a *HostError), never a prompt and
// never added. Login is by public key only (IdentityFile, ssh-agent).
//
// On a host, a server runs detached (setsid) under a small sh wrapper
// that waits for it and appends its exit status to its log. Starts that
// wait for the same host leave together in one session (see Start); one
// watcher session per host notices ends, looking when the launcher asks
// it to, twice a second, with shell builtins only (see Wait). A host needs
// POSIX sh, coreutils, sed, util-linux setsid (-f) and Linux /proc, a
// login shell that runs `exec /bin/sh -c ...`, and sshd's MaxSessions at
// least 8 (the default is 10). The launcher writes nothing there but the
// logs and the installed files.
//
// All methods are safe for concurrent use.
type SSH struct {
	log          *slog.Logger
	user         string
	port         int
	identityFile string
	signer       ssh.Signer // from identityFile; nil if none or encrypted (then the agent's)
	knownHosts   string
	agentSock    string
	dialTimeout  time.Duration
	keepAlive    time.Duration
	watchSweep   int // sshWatchSweep; tests shorten it

	ctx    context.Context // ends on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the launcher starts

	mu       sync.Mutex
	closed   bool
	hosts    map[string]*sshHost
	installs map[sshInstallKey]*sshInstall
}

// NewSSH returns an SSH launcher. It reads the identity file and checks
// that known_hosts exists; it connects to no host until one is used.
func NewSSH(cfg SSHConfig) (*SSH, error) {
	s := &SSH{
		log:         cfg.Logger,
		user:        cfg.User,
		port:        cfg.Port,
		agentSock:   cfg.AgentSocket,
		dialTimeout: cfg.DialTimeout,
		keepAlive:   cfg.KeepAlive,
		watchSweep:  sshWatchSweep,
		hosts:       map[string]*sshHost{},
		installs:    map[sshInstallKey]*sshInstall{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.user == "" {
		u, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("ssh: current user: %w", err)
		}
		s.user = u.Username
	}
	if s.port == 0 {
		s.port = 22
	}
	if s.port < 0 || s.port > 65535 {
		return nil, fmt.Errorf("ssh: port %d out of range", s.port)
	}
	if s.dialTimeout <= 0 {
		s.dialTimeout = 5 * time.Second
	}
	if s.keepAlive <= 0 {
		s.keepAlive = 3 * time.Second
	}
	if s.agentSock == "" {
		s.agentSock = os.Getenv("SSH_AUTH_SOCK")
	}
	var err error
	if s.knownHosts, err = expandHome(cfg.KnownHosts, "~/.ssh/known_hosts"); err != nil {
		return nil, err
	}
	if _, err := os.Stat(s.knownHosts); err != nil {
		return nil, fmt.Errorf("ssh: known hosts file: %w", err)
	}
	if cfg.IdentityFile != "" {
		if s.identityFile, err = expandHome(cfg.IdentityFile, ""); err != nil {
			return nil, err
		}
		pem, err := os.ReadFile(s.identityFile)
		if err != nil {
			return nil, fmt.Errorf("ssh: identity file: %w", err)
		}
		s.signer, err = ssh.ParsePrivateKey(pem)
		var pm *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &pm) && s.agentSock == "":
			return nil, fmt.Errorf("ssh: identity file %s is encrypted and there is no ssh-agent: "+
				"load it into ssh-agent (ssh-add %s) and set SSH_AUTH_SOCK; the master never prompts for a passphrase",
				s.identityFile, s.identityFile)
		case errors.As(err, &pm):
			// The agent is asked for its keys at each login; this one
			// should be among them.
			s.signer = nil
			s.log.Info("ssh identity file is encrypted; using ssh-agent's keys", "file", s.identityFile)
		case err != nil:
			return nil, fmt.Errorf("ssh: identity file %s: %w", s.identityFile, err)
		}
	}
	if s.signer == nil && s.agentSock == "" {
		return nil, errors.New("ssh: no identity file and no ssh-agent (SSH_AUTH_SOCK): nothing to log in with")
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// expandHome expands a leading "~/" (def when p is "").
func expandHome(p, def string) (string, error) {
	if p == "" {
		p = def
	}
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("ssh: expand %s: %w", p, err)
		}
		p = filepath.Join(home, rest)
	}
	return p, nil
}

// spawn runs f on a goroutine that Close waits for, unless the launcher
// is closed (false).
func (s *SSH) spawn(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Go(f)
	return true
}

// host returns the host named name, made on first use.
func (s *SSH) host(name string) (*sshHost, error) {
	if name == "" {
		return nil, errors.New("no host")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errSSHClosed
	}
	h := s.hosts[name]
	if h == nil {
		h = newSSHHost(s, name)
		s.hosts[name] = h
	}
	return h, nil
}

// HostErr is why host cannot be used now (a *HostError): its last dial
// failed or its connection broke and has not been made again. nil when it
// is connected, or was never tried.
func (s *SSH) HostErr(host string) error {
	s.mu.Lock()
	h := s.hosts[host]
	s.mu.Unlock()
	if h == nil {
		return nil
	}
	return h.hostErr()
}

// checkSSHSpec rejects what cannot be handed to a remote shell: relative
// paths, newlines where the watcher reads lines, NUL anywhere, and
// environment names the shell cannot export.
func checkSSHSpec(spec Spec) error {
	if spec.ID == "" {
		return errors.New("no server id")
	}
	for _, p := range []struct{ what, v string }{{"working directory", spec.Dir}, {"binary", spec.Binary}, {"log", spec.Log}} {
		if !path.IsAbs(p.v) {
			return fmt.Errorf("%s %q is not an absolute path", p.what, p.v)
		}
	}
	for _, v := range []string{spec.ID, spec.Dir, spec.Binary, spec.Log} {
		if strings.ContainsAny(v, "\n\x00") {
			return fmt.Errorf("%q holds a newline or NUL", v)
		}
	}
	for _, a := range spec.Args {
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("argument %q holds a NUL", a)
		}
	}
	if err := checkEnviron(spec.Environ); err != nil {
		return err
	}
	for _, kv := range spec.Environ {
		k, _, _ := strings.Cut(kv, "=")
		if !validShellName(k) {
			return fmt.Errorf("environment variable name %q is not a shell name ([A-Za-z_][A-Za-z0-9_]*)", k)
		}
		if k == startEnvVar {
			return fmt.Errorf("environment variable name %q is reserved (the start script reads the environment with it)", k)
		}
	}
	return nil
}

// checkHandle rejects a handle this launcher cannot act on.
func checkHandle(h Handle) error {
	switch {
	case h.Driver != DriverSSH && h.Driver != "":
		return fmt.Errorf("handle of driver %q, not %q", h.Driver, DriverSSH)
	case h.PID <= 0:
		return fmt.Errorf("bad pid %d", h.PID)
	case h.StartTicks == 0 && (h.Binary == "" || h.ID == ""):
		return errors.New("handle has neither start time nor binary and id to recognise its process by")
	case strings.ContainsAny(h.ID+h.Binary+h.Log+h.BootID, "\n\x00"):
		return errors.New("handle holds a newline or NUL")
	case strings.ContainsAny(h.BootID, " \t"):
		return fmt.Errorf("bad boot id %q", h.BootID) // the watcher reads it as a word
	}
	return nil
}

// identArgs are a handle's PID TICKS BOOT BINARY ID, as alive takes them.
func identArgs(h Handle) []string {
	return []string{strconv.Itoa(h.PID), strconv.FormatUint(h.StartTicks, 10), h.BootID, h.Binary, h.ID}
}

// Recover reports whether h's process still runs on its host: nil if it
// does (Wait then watches it), an error wrapping ErrGone (with its exit
// status when its wrapper logged one) if it has ended, a *HostError if the
// host cannot be reached.
func (s *SSH) Recover(ctx context.Context, h Handle) error {
	if err := checkHandle(h); err != nil {
		return fmt.Errorf("recover %s: %w", h, err)
	}
	host, err := s.host(h.Host)
	if err != nil {
		return fmt.Errorf("recover %s: %w", h, err)
	}
	var out capBuffer
	if err := host.run(ctx, host.ops, remoteCommand(remoteCheck, append(identArgs(h), h.Log)...), nil, &out); err != nil {
		return fmt.Errorf("recover %s: %w", h, err)
	}
	for line := range strings.Lines(out.String()) {
		line = strings.TrimSpace(line)
		if line == "running" {
			return nil
		}
		if st, ok := strings.CutPrefix(line, "gone"); ok {
			return fmt.Errorf("recover %s: %s: %w", h, exitFromReport(strings.TrimSpace(st), time.Now()).Status, ErrGone)
		}
	}
	return fmt.Errorf("recover %s: no answer from the host (output %q)", h, out.String())
}

// exitFromReport is the Exit for a status the wrapper logged ("" or "?"
// when unknown).
func exitFromReport(st string, at time.Time) Exit {
	code, err := strconv.Atoi(st)
	if err != nil || code < 0 {
		return Exit{Code: -1, Status: "ended (exit status unknown)", At: at}
	}
	return ExitFromStatus(code, at)
}

// Stop sends SIGTERM to h's process, SIGKILL after grace, and returns once
// it has ended. Its identity is checked on the host before every signal.
func (s *SSH) Stop(ctx context.Context, h Handle, grace time.Duration) error {
	steps := max(1, int((grace+49*time.Millisecond)/(50*time.Millisecond)))
	if err := s.stop(ctx, h, "TERM", steps); err != nil {
		return fmt.Errorf("stop %s: %w", h, err)
	}
	return nil
}

// Kill sends SIGKILL to h's process and returns once it has ended.
func (s *SSH) Kill(ctx context.Context, h Handle) error {
	if err := s.stop(ctx, h, "KILL", 0); err != nil {
		return fmt.Errorf("kill %s: %w", h, err)
	}
	return nil
}

func (s *SSH) stop(ctx context.Context, h Handle, sig string, steps int) error {
	if err := checkHandle(h); err != nil {
		return err
	}
	host, err := s.host(h.Host)
	if err != nil {
		return err
	}
	var out capBuffer
	args := append(identArgs(h), sig, strconv.Itoa(steps))
	if err := host.run(ctx, host.ops, remoteCommand(remoteStop, args...), nil, &out); err != nil {
		return err
	}
	if sig == "TERM" && strings.Contains(out.String(), "kill\n") {
		s.log.Warn("server did not stop in time; killed it", "server", h.ID, "host", h.Host, "pid", h.PID)
	}
	if !strings.Contains(out.String(), "gone\n") {
		return fmt.Errorf("no answer from the host (output %q)", out.String())
	}
	return nil
}

// Logs writes the last n lines of path on host to w (all when n <= 0),
// then, if follow, what is appended until ctx ends (nil then), with tail
// on the host. At most two Logs run at a time per host (a follower holds
// an SSH session); more wait their turn, within ctx.
func (s *SSH) Logs(ctx context.Context, host, path string, n int, follow bool, w io.Writer) error {
	fail := func(err error) error { return fmt.Errorf("logs %s on %s: %w", path, host, err) }
	if strings.ContainsRune(path, 0) {
		return fail(errors.New("path holds a NUL"))
	}
	h, err := s.host(host)
	if err != nil {
		return fail(err)
	}
	lines := "+1"
	if n > 0 {
		lines = strconv.Itoa(n)
	}
	cmd := "exec tail -n " + lines
	if follow {
		cmd += " -f"
	}
	cmd += " -- " + remoteQuote(path)
	err = h.run(ctx, h.logs, cmd, nil, w)
	if follow && err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

// Close ends the watchers (their channels close without a value) and the
// connections. The servers keep running. Calls after Close fail.
func (s *SSH) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}
