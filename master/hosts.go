package master

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/master/launch"
)

// hosts gives the master a launcher per host and prepares remote hosts:
// the config file every server there reads, and the binary when
// uploadBinary is set, copied once per host and only when its SHA-256
// there differs.
type hosts struct {
	m     *Master
	local launch.Launcher

	mu       sync.Mutex
	ssh      launch.Launcher      // made when a remote host first needs it
	sshErr   error                // why it could not be made
	injected bool                 // launchers given by the config (tests)
	ready    map[string]*prepCall // host → its last preparation
	sums     map[string]fileSum   // local file → its checksum
}

// prepCall is one preparation of a host, shared by the starts waiting on it.
type prepCall struct {
	key  string // what was prepared: the checksums of the files
	done chan struct{}
	err  error
}

type fileSum struct {
	size  int64
	mtime time.Time
	sum   string
}

func newHosts(m *Master, given map[string]launch.Launcher) *hosts {
	h := &hosts{m: m, ready: map[string]*prepCall{}, sums: map[string]fileSum{}}
	if given != nil {
		h.local, h.ssh, h.injected = given[launch.DriverLocal], given[launch.DriverSSH], true
		if h.ssh == nil {
			h.sshErr = errors.New("no SSH launcher")
		}
		return h
	}
	h.local = launch.NewLocal(m.log)
	return h
}

// remote returns the SSH launcher, making it on first use.
func (h *hosts) remote() (launch.Launcher, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ssh == nil && h.sshErr == nil {
		h.ssh, h.sshErr = newSSH(h.m.env.SSH, h.m.log)
	}
	return h.ssh, h.sshErr
}

// newSSH makes the SSH launcher for an environment's [ENV.ssh] table.
func newSSH(c config.SSH, log *slog.Logger) (launch.Launcher, error) {
	s, err := launch.NewSSH(launch.SSHConfig{User: c.User, Port: c.Port, IdentityFile: c.IdentityFile,
		KnownHosts: c.KnownHosts, Logger: log})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// remoteHosts returns the hosts of the configured servers that are not
// this machine, sorted.
func (m *Master) remoteHosts() []string {
	var out []string
	for _, h := range m.configuredHosts() {
		if !isLocalHost(h) {
			out = append(out, h)
		}
	}
	return out
}

// configuredHosts returns the hosts of the configured servers, sorted.
func (m *Master) configuredHosts() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, srv := range m.servers {
		if srv.configured && !slices.Contains(out, srv.cfg.Host) {
			out = append(out, srv.cfg.Host)
		}
	}
	slices.Sort(out)
	return out
}

// launcher returns the launcher for a host.
func (h *hosts) launcher(host string) (launch.Launcher, error) {
	if isLocalHost(host) {
		return h.local, nil
	}
	l, err := h.remote()
	if err != nil {
		return nil, &launch.HostError{Host: host, Err: fmt.Errorf("ssh %s: %w", host, err)}
	}
	return l, nil
}

// byDriver returns the launcher that made a handle.
func (h *hosts) byDriver(driver string) (launch.Launcher, error) {
	switch driver {
	case launch.DriverLocal:
		return h.local, nil
	case launch.DriverSSH:
		l, err := h.remote()
		if err != nil {
			return nil, fmt.Errorf("ssh: %w", err)
		}
		return l, nil
	}
	return nil, fmt.Errorf("unknown launcher %q", driver)
}

// hostErr is what is known to be wrong with reaching host, or nil.
func (h *hosts) hostErr(host string) error {
	if isLocalHost(host) {
		return nil
	}
	h.mu.Lock()
	l, err := h.ssh, h.sshErr
	h.mu.Unlock()
	if err != nil {
		return err
	}
	if he, ok := l.(interface{ HostErr(string) error }); ok && l != nil {
		return he.HostErr(host)
	}
	return nil
}

func (h *hosts) close() {
	if h.injected {
		return
	}
	h.local.Close()
	h.mu.Lock()
	l := h.ssh
	h.mu.Unlock()
	if l != nil {
		l.Close()
	}
}

// appliedConfig is the master's copy of the config it runs.
func (m *Master) appliedConfig() string { return m.paths.AppliedConfig(m.env.Name) }

// remoteConfig is where a remote host keeps its copy of servers.toml.
func (m *Master) remoteConfig() string {
	return filepath.Join(m.base, "run", m.env.Name+".servers.toml")
}

// spec is how to start server c as instance epoch; build, if known, is the
// build id of the binary it will run. A server added with `master add` is
// not in the servers.toml it reads: its description goes on its command
// line.
func (m *Master) spec(c config.Server, epoch uint64, binary, build string, added bool) launch.Spec {
	cfgPath := m.appliedConfig()
	if !isLocalHost(c.Host) {
		cfgPath = m.remoteConfig()
	}
	args := []string{"--env", m.env.Name, "--id", c.ID, "--config", cfgPath, "--master", m.addr}
	if added {
		args = append(args, "--type", c.Type, "--host", c.Host, "--port", strconv.Itoa(c.Port))
		if c.Frontend {
			args = append(args, "--frontend", "--client-host", c.ClientHost, "--client-port", strconv.Itoa(c.ClientPort))
		}
		if c.Group != "" {
			args = append(args, "--group", c.Group)
		}
		if c.MetricsPort != 0 {
			args = append(args, "--metrics-port", strconv.Itoa(c.MetricsPort))
		}
	}
	args = append(args, c.Args...)
	env := append(envList(c.Env), launch.SecretEnv+"="+m.secret, launch.EpochEnv+"="+strconv.FormatUint(epoch, 10))
	if build != "" {
		env = append(env, launch.BuildEnv+"="+build)
	}
	return launch.Spec{ID: c.ID, Host: c.Host, Dir: m.base, Binary: binary, Args: args, Environ: env, Log: m.logPath(c)}
}

// logPath is a server's log file on its host: beside the config here,
// under base elsewhere (see Logs).
func (m *Master) logPath(c config.Server) string {
	if isLocalHost(c.Host) {
		return m.paths.ServerLog(c.ID)
	}
	return filepath.Join(m.base, "logs", c.ID+".log")
}

// prepare makes a remote host ready to start servers: its copy of the
// config, and the binary if uploadBinary. The starts of one host share one
// preparation; a host is prepared again only when a file changed here.
func (h *hosts) prepare(ctx context.Context, host string) error {
	if isLocalHost(host) {
		return nil
	}
	l, err := h.launcher(host)
	if err != nil {
		return err
	}
	inst, ok := l.(launch.Installer)
	if !ok {
		return nil
	}
	m := h.m
	files := []struct {
		src, dst string
		mode     os.FileMode
		what     string
	}{{m.appliedConfig(), m.remoteConfig(), 0o600, "config"}}
	if m.env.SSH.UploadBinary {
		files = append(files, struct {
			src, dst string
			mode     os.FileMode
			what     string
		}{m.binary, m.binary, 0o755, "binary"})
	}
	sums := make([]string, len(files))
	for i, f := range files {
		if sums[i], err = h.sum(f.src); err != nil {
			return fmt.Errorf("prepare %s: %w", host, err)
		}
	}
	key := strings.Join(sums, ",")

	h.mu.Lock()
	c := h.ready[host]
	if c != nil && c.key == key {
		select {
		case <-c.done:
			if c.err == nil {
				h.mu.Unlock()
				return nil // prepared with these very files
			}
			c = nil // failed: try again
		default:
		}
	} else {
		c = nil
	}
	if c == nil {
		c = &prepCall{key: key, done: make(chan struct{})}
		h.ready[host] = c
		h.mu.Unlock()
		c.err = h.install(host, inst, files[0].src, sums[0], files[0].dst, files[0].mode, false)
		for i := 1; c.err == nil && i < len(files); i++ {
			c.err = h.install(host, inst, files[i].src, sums[i], files[i].dst, files[i].mode, true)
		}
		close(c.done)
		return c.err
	}
	h.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return fmt.Errorf("prepare %s: %w", host, ctx.Err())
	}
}

// install copies one file to a host unless it is there already, and says
// so in the progress when told.
func (h *hosts) install(host string, inst launch.Installer, src, sum, dst string, mode os.FileMode, loud bool) error {
	// Not the caller's context: a start that gives up must not leave the
	// other starts of this host with a half-done upload.
	ctx, cancel := context.WithTimeout(h.m.ctx, 5*time.Minute)
	defer cancel()
	start := time.Now()
	copied, err := inst.Install(ctx, host, src, sum, dst, mode)
	if err != nil {
		return fmt.Errorf("upload %s to %s: %w", src, host, err)
	}
	m := h.m
	rel := m.rel(src)
	switch {
	case copied:
		size := int64(0)
		if fi, err := os.Stat(src); err == nil {
			size = fi.Size()
		}
		m.log.Info("uploaded", "host", host, "file", src, "to", dst, "bytes", size, "took", time.Since(start).Round(time.Millisecond))
		if loud {
			m.note(fmt.Sprintf("%s: uploaded %s (%.1f MB, sha256 %s) in %s", host, rel, float64(size)/1e6, sum[:12], time.Since(start).Round(10*time.Millisecond)), false)
		}
	default:
		m.log.Info("upload skipped: same checksum on the host", "host", host, "file", src, "sha256", sum[:12])
		if loud {
			m.note(fmt.Sprintf("%s: %s is up to date (sha256 %s); upload skipped", host, rel, sum[:12]), false)
		}
	}
	return nil
}

// build returns the build id of the binary a server on host runs, when
// the master knows it: the very file here, or the copy it uploaded there.
// Otherwise "" (the server hashes its own binary). Saves every server of a
// large start hashing tens of MB.
func (h *hosts) build(host, binary string) string {
	if !isLocalHost(host) && !h.m.env.SSH.UploadBinary && binary == h.m.binary {
		return "" // not uploaded (binary.next, from an update, always is)
	}
	sum, err := h.sum(binary)
	if err != nil {
		return ""
	}
	return sum[:12]
}

// rel shows a path relative to base when it is inside it.
func (m *Master) rel(path string) string {
	if r, err := filepath.Rel(m.base, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

// sum returns a local file's SHA-256, cached by size and modification time.
func (h *hosts) sum(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	h.mu.Lock()
	c, ok := h.sums[path]
	h.mu.Unlock()
	if ok && c.size == fi.Size() && c.mtime.Equal(fi.ModTime()) {
		return c.sum, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	hh := sha256.New()
	if _, err := io.Copy(hh, f); err != nil {
		return "", fmt.Errorf("checksum %s: %w", path, err)
	}
	s := hex.EncodeToString(hh.Sum(nil))
	h.mu.Lock()
	h.sums[path] = fileSum{size: fi.Size(), mtime: fi.ModTime(), sum: s}
	h.mu.Unlock()
	return s, nil
}

// envList turns a server's env table into KEY=VALUE pairs, sorted.
func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// isLocalHost reports whether host is this machine: loopback, unspecified,
// one of its interface addresses, "localhost" or its host name.
func isLocalHost(host string) bool {
	if host == "localhost" {
		return true
	}
	if name, err := os.Hostname(); err == nil && strings.EqualFold(host, name) {
		return true
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}
