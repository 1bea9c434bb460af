package launch

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Session slots per connection. OpenSSH's sshd allows MaxSessions (10 by
// default) sessions on one connection; the launcher keeps below that: one
// for the host's watcher, a few for Logs (which may follow a file for
// hours and must not starve starts and stops), the rest for short
// commands, of which at most sshStartSessions start servers. sshd frees a
// session a moment after its command ends, so a slot reused at once can
// be refused: newSession asks again.
const (
	sshOpSessions  = 5
	sshLogSessions = 2
	sshSessions    = 1 + sshLogSessions + sshOpSessions // with the watcher's
)

// Reconnect backoff after a failed dial: while it lasts, callers get the
// last error at once instead of each hammering a dead host.
const (
	sshBackoffMin = 500 * time.Millisecond
	sshBackoffMax = 8 * time.Second
)

// sshHost is one host: its connection, shared by every session to it, and
// the processes watched there.
type sshHost struct {
	s    *SSH
	name string // as servers.toml names it
	addr string // host:port, dialed and looked up in known_hosts

	ops  chan struct{} // session slots for short commands
	logs chan struct{} // session slots for Logs

	mu       sync.Mutex
	conn     *sshConn  // the live connection, nil when there is none
	dialing  *sshDial  // the dial under way, shared by all who need it
	lastErr  error     // why the host cannot be used now; nil when connected or never tried
	failures int       // dials failed in a row
	retryAt  time.Time // no dial before this after a failure

	watches map[sshWatchKey]*sshWatch
	byN     map[uint64]*sshWatch
	nextN   uint64
	watcher bool          // its watcher goroutine runs
	changed chan struct{} // (cap 1) the watch set changed

	startQ   []*sshStartReq // Starts waiting for a start session
	starters int            // starter goroutines running (at most sshStartSessions)
}

// sshConn is one SSH connection to a host.
type sshConn struct {
	c    *ssh.Client
	done chan struct{} // closed once the connection has ended
	err  error         // why it ended; written before done is closed
	once sync.Once
}

// end closes the connection for reason err; the first reason stays.
func (c *sshConn) end(err error) {
	c.once.Do(func() {
		c.err = err
		c.c.Close()
		close(c.done)
	})
}

// sshDial is a dial in progress; its result goes to every caller waiting
// on it.
type sshDial struct {
	done chan struct{}
	conn *sshConn
	err  error
}

func newSSHHost(s *SSH, name string) *sshHost {
	return &sshHost{
		s:       s,
		name:    name,
		addr:    net.JoinHostPort(name, strconv.Itoa(s.port)),
		ops:     make(chan struct{}, sshOpSessions),
		logs:    make(chan struct{}, sshLogSessions),
		watches: map[sshWatchKey]*sshWatch{},
		byN:     map[uint64]*sshWatch{},
		changed: make(chan struct{}, 1),
	}
}

// hostErr is the host's current trouble, for HostErr.
func (h *sshHost) hostErr() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn != nil {
		return nil
	}
	return h.lastErr
}

// client returns the host's connection, dialing it if there is none. A
// dial already under way is joined; within the backoff after a failed
// dial, that failure is returned again.
func (h *sshHost) client(ctx context.Context) (*sshConn, error) {
	h.mu.Lock()
	if c := h.conn; c != nil {
		h.mu.Unlock()
		return c, nil
	}
	d := h.dialing
	if d == nil {
		if h.lastErr != nil && time.Now().Before(h.retryAt) {
			err := h.lastErr
			h.mu.Unlock()
			return nil, err
		}
		d = &sshDial{done: make(chan struct{})}
		if !h.s.spawn(func() { h.dial(d) }) {
			h.mu.Unlock()
			return nil, errSSHClosed
		}
		h.dialing = d
	}
	h.mu.Unlock()
	select {
	case <-d.done:
		return d.conn, d.err
	case <-ctx.Done():
		// The dial goes on for whoever else waits; this caller could
		// not reach the host in its time.
		return nil, &HostError{Host: h.name, Err: fmt.Errorf("ssh %s: not connected in time: %w", h.addr, ctx.Err())}
	}
}

// retryIn is how long until the host may be dialed again.
func (h *sshHost) retryIn() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lastErr == nil {
		return 0
	}
	return max(0, time.Until(h.retryAt))
}

// dial connects to the host and makes the result the host's state.
func (h *sshHost) dial(d *sshDial) {
	start := time.Now()
	c, err := h.s.connect(h)
	h.mu.Lock()
	h.dialing = nil
	if err == nil && h.s.ctx.Err() != nil {
		c.end(errSSHClosed)
		c, err = nil, errSSHClosed
	}
	if err == nil {
		h.s.wg.Go(func() { h.keep(c) }) // after the check above, keep sees the launcher close
	}
	// While a host stays down, the watcher redials it every few
	// seconds: log a failure once, and again only when it changes.
	level := slog.LevelWarn
	if err != nil {
		if h.lastErr != nil && h.lastErr.Error() == err.Error() {
			level = slog.LevelDebug
		}
		h.failures++
		h.retryAt = time.Now().Add(min(sshBackoffMax, sshBackoffMin<<min(h.failures-1, 8)))
		h.lastErr = err
	} else {
		h.failures, h.lastErr, h.conn = 0, nil, c
	}
	h.mu.Unlock()
	if err != nil && !errors.Is(err, errSSHClosed) {
		h.s.log.Log(h.s.ctx, level, "ssh connect failed", "host", h.name, "err", err)
	} else if err == nil {
		h.s.log.Info("ssh connected", "host", h.name, "took", time.Since(start).Round(time.Millisecond))
	}
	d.conn, d.err = c, err
	close(d.done)
}

// keep sends keepalives on c until it ends, and ends it when one goes
// unanswered for the keepalive interval: a host that froze or vanished
// from the network sends no RST, and the sessions on c would hang.
func (h *sshHost) keep(c *sshConn) {
	s := h.s
	closed := make(chan error, 1)
	s.wg.Go(func() { closed <- c.c.Wait() })
	t := time.NewTicker(s.keepAlive)
	defer t.Stop()
	for {
		select {
		case err := <-closed:
			if err == nil {
				err = io.EOF
			}
			c.end(fmt.Errorf("connection lost: %w", err))
			h.lost(c)
			return
		case <-s.ctx.Done():
			c.end(errSSHClosed)
			<-closed
			return
		case <-t.C:
		}
		if err := h.ping(c); err != nil {
			c.end(err)
			h.lost(c)
			<-closed
			return
		}
	}
}

// ping sends one keepalive and waits for its reply up to the keepalive
// interval. OpenSSH answers keepalive@openssh.com with a failure: any
// answer will do.
func (h *sshHost) ping(c *sshConn) error {
	reply := make(chan error, 1)
	// It ends when the reply comes or the connection closes, which the
	// caller does when there is no reply.
	h.s.wg.Go(func() {
		_, _, err := c.c.SendRequest("keepalive@openssh.com", true, nil)
		reply <- err
	})
	t := time.NewTimer(h.s.keepAlive)
	defer t.Stop()
	select {
	case err := <-reply:
		if err != nil {
			return fmt.Errorf("keepalive: %w", err)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("no reply to keepalive within %s", h.s.keepAlive)
	}
}

// lost forgets a connection that has ended.
func (h *sshHost) lost(c *sshConn) {
	h.mu.Lock()
	if h.conn == c {
		h.conn = nil
		h.lastErr = &HostError{Host: h.name, Err: fmt.Errorf("ssh %s: %w", h.addr, c.err)}
	}
	h.mu.Unlock()
	h.s.log.Warn("ssh connection lost", "host", h.name, "err", c.err)
}

// errSSHClosed is what calls get once the launcher is closed.
var errSSHClosed = errors.New("ssh launcher closed")

// connect dials the host and logs in: TCP connect, handshake (host key
// checked against known_hosts) and authentication together bounded by the
// dial timeout. ClientConfig.Timeout would bound only the TCP connect: a
// host that accepts the connection but never speaks (frozen, overloaded)
// would hang the handshake forever.
func (s *SSH) connect(h *sshHost) (*sshConn, error) {
	fail := func(format string, a ...any) (*sshConn, error) {
		return nil, &HostError{Host: h.name, Err: fmt.Errorf("ssh %s: "+format, append([]any{h.addr}, a...)...)}
	}
	check, err := knownhosts.New(s.knownHosts) // read each time: a key added to fix a host works at once
	if err != nil {
		return fail("read known hosts: %w", err)
	}
	var keyErr atomic.Pointer[HostError]
	auth, closeAgent, err := s.authMethods()
	if err != nil {
		return fail("%w", err)
	}
	defer closeAgent()
	cfg := &ssh.ClientConfig{
		User: s.user,
		Auth: auth,
		HostKeyCallback: func(addr string, remote net.Addr, key ssh.PublicKey) error {
			err := check(addr, remote, key)
			if err != nil {
				keyErr.Store(s.hostKeyError(h, key, err))
			}
			return err
		},
		HostKeyAlgorithms: knownKeyAlgorithms(check, h.addr),
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(s.ctx, s.dialTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", h.addr)
	if err != nil {
		if s.ctx.Err() != nil {
			return nil, errSSHClosed
		}
		if isTimeout(err) {
			return fail("connect: i/o timeout after %s", s.dialTimeout)
		}
		return fail("connect: %w", unwrapOp(err))
	}
	conn.SetDeadline(start.Add(s.dialTimeout))
	stop := context.AfterFunc(s.ctx, func() { conn.Close() })
	cc, chans, reqs, err := ssh.NewClientConn(conn, h.addr, cfg)
	stop()
	if err != nil {
		conn.Close()
		switch ke := keyErr.Load(); {
		case ke != nil:
			return nil, ke
		case s.ctx.Err() != nil:
			return nil, errSSHClosed
		case isTimeout(err):
			return fail("handshake: i/o timeout after %s", s.dialTimeout)
		case strings.Contains(err.Error(), "unable to authenticate"):
			return fail("authenticate as %s: the server accepted none of %s", s.user, s.authDesc())
		}
		if inner := errors.Unwrap(err); inner != nil {
			err = inner // drop x/crypto's "ssh: handshake failed:"
		}
		return fail("handshake: %w", err)
	}
	conn.SetDeadline(time.Time{})
	return &sshConn{c: ssh.NewClient(cc, chans, reqs), done: make(chan struct{})}, nil
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// unwrapOp drops net.OpError's "dial tcp ADDR:" prefix, which the
// caller's message already says.
func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// hostKeyError explains a host key that known_hosts does not vouch for,
// and how to fix it. It never offers to trust the key: that is for the
// operator to decide, after checking the fingerprint.
func (s *SSH) hostKeyError(h *sshHost, key ssh.PublicKey, err error) *HostError {
	host, port, _ := net.SplitHostPort(h.addr)
	fp := ssh.FingerprintSHA256(key)
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	var msg error
	switch {
	case errors.As(err, &ke) && len(ke.Want) == 0:
		msg = fmt.Errorf("ssh %s: host key is unknown: %s has no entry for host %s port %s (it offers %s key %s); "+
			"if that is the host's key, add it with: ssh-keyscan -p %s %s >> %s",
			h.addr, s.knownHosts, host, port, key.Type(), fp, port, host, s.knownHosts)
	case errors.As(err, &ke):
		lines := make([]string, len(ke.Want))
		for i, w := range ke.Want {
			lines[i] = fmt.Sprintf("%s:%d", w.Filename, w.Line)
		}
		msg = fmt.Errorf("host key mismatch for %s port %s: it offers %s key %s, which is not the key in %s; "+
			"someone may be intercepting the connection, or the host's key was changed: if so, remove that entry "+
			"(ssh-keygen -R '%s' -f %s) and add the new key (ssh-keyscan -p %s %s >> %s)",
			host, port, key.Type(), fp, strings.Join(lines, ", "), knownhosts.Normalize(h.addr), s.knownHosts,
			port, host, s.knownHosts)
	case errors.As(err, &re):
		msg = fmt.Errorf("ssh %s: host key %s is revoked at %s:%d", h.addr, fp, re.Revoked.Filename, re.Revoked.Line)
	default:
		msg = fmt.Errorf("ssh %s: host key: %w", h.addr, err)
	}
	return &HostError{Host: h.name, Err: msg}
}

// knownKeyAlgorithms lists the host key algorithms to accept from addr:
// those of the keys known_hosts holds for it, in x/crypto's order of
// preference. Otherwise the server could pick a key type known_hosts has
// no line for, and knownhosts would call a good host a mismatch (see
// knownhosts.KeyError). It asks check about a key nobody has: the
// KeyError names every key on file for the host. nil (the default list)
// when there are none, e.g. only a @cert-authority line.
func knownKeyAlgorithms(check ssh.HostKeyCallback, addr string) []string {
	probe, err := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if err := check(addr, &net.TCPAddr{IP: net.IPv4zero}, probe); !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil
	}
	var types []string
	for _, w := range ke.Want {
		types = append(types, w.Key.Type())
	}
	var algos []string
	for _, a := range ssh.SupportedAlgorithms().HostKeys {
		t := a
		if a == ssh.KeyAlgoRSASHA256 || a == ssh.KeyAlgoRSASHA512 {
			t = ssh.KeyAlgoRSA // an ssh-rsa key signs with any of them
		}
		if slices.Contains(types, t) {
			algos = append(algos, a)
		}
	}
	return algos
}

// authMethods is the public-key authentication to offer: the identity
// file's key, then the agent's keys. The agent connection lives for one
// handshake; closeAgent ends it.
func (s *SSH) authMethods() (methods []ssh.AuthMethod, closeAgent func(), err error) {
	closeAgent = func() {}
	var signers []ssh.Signer
	if s.signer != nil {
		signers = append(signers, s.signer)
	}
	if s.agentSock != "" {
		conn, err := net.DialTimeout("unix", s.agentSock, s.dialTimeout)
		if err != nil && len(signers) == 0 {
			return nil, closeAgent, fmt.Errorf("ssh-agent at %s: %w", s.agentSock, err)
		}
		if err == nil {
			closeAgent = func() { conn.Close() }
			conn.SetDeadline(time.Now().Add(s.dialTimeout))
			keys, err := agent.NewClient(conn).Signers()
			if err != nil && len(signers) == 0 {
				closeAgent()
				return nil, func() {}, fmt.Errorf("ssh-agent at %s: %w", s.agentSock, err)
			}
			signers = append(signers, keys...)
		}
	}
	if len(signers) == 0 {
		return nil, closeAgent, fmt.Errorf("no key to log in with: %s", s.authDesc())
	}
	return []ssh.AuthMethod{ssh.PublicKeys(signers...)}, closeAgent, nil
}

// authDesc says where keys come from, for errors.
func (s *SSH) authDesc() string {
	var from []string
	if s.identityFile != "" {
		from = append(from, "the key in "+s.identityFile)
	}
	if s.agentSock != "" {
		from = append(from, "the keys of ssh-agent at "+s.agentSock)
	}
	if len(from) == 0 {
		return "no identity file and no ssh-agent"
	}
	return strings.Join(from, " and ")
}

// run runs cmd on the host in a session: a slot from pool, the host's
// connection, stdin and stdout as given. The session ends when ctx does
// (its remote command gets SIGTERM, then the channel closes) or the
// launcher closes (the connection does). A remote
// exit status remoteFail gives the script's message as the error; a
// connection that fails gives a *HostError.
func (h *sshHost) run(ctx context.Context, pool chan struct{}, cmd string, stdin io.Reader, stdout io.Writer) error {
	select {
	case pool <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-pool }()
	return h.session(ctx, cmd, stdin, stdout)
}

// session is run for a caller that holds a session slot already.
func (h *sshHost) session(ctx context.Context, cmd string, stdin io.Reader, stdout io.Writer) error {
	c, err := h.client(ctx)
	if err != nil {
		return err
	}
	sess, err := h.newSession(ctx, c)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return h.sessionErr(c, err)
	}
	defer sess.Close()
	var stderr capBuffer
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, &stderr
	ran := make(chan struct{})
	defer close(ran)
	if !h.s.spawn(func() {
		select {
		case <-ctx.Done():
			sess.Signal(ssh.SIGTERM)
			sess.Close()
		case <-ran:
		}
	}) {
		return errSSHClosed
	}
	err = sess.Run(cmd)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		msg := strings.TrimSpace(stderr.String())
		if ee.ExitStatus() == remoteFail && msg != "" {
			return errors.New(msg)
		}
		if ee.Signal() != "" {
			return fmt.Errorf("remote command killed by SIG%s: %s", ee.Signal(), msg)
		}
		return fmt.Errorf("remote command exited with status %d: %s", ee.ExitStatus(), msg)
	}
	return h.sessionErr(c, err)
}

// How long a session refused by sshd is asked for again. sshd frees a
// session only after its channel's close has been processed and its child
// reaped, a moment after the client sees the command end and frees the
// slot: a new session on that slot can arrive first and be refused ("open
// failed", as for MaxSessions reached). A host whose MaxSessions is below
// the launcher's slots is waited on the same way.
const (
	sshOpenRetryMin = 2 * time.Millisecond
	sshOpenRetryMax = 100 * time.Millisecond
	sshOpenPatience = 5 * time.Second
)

// newSession opens a session on c, asking again while sshd refuses it for
// want of a free session (see sshOpenPatience); ctx's error if ctx ends
// meanwhile.
func (h *sshHost) newSession(ctx context.Context, c *sshConn) (*ssh.Session, error) {
	wait, start := sshOpenRetryMin, time.Now()
	for {
		sess, err := c.c.NewSession()
		var oe *ssh.OpenChannelError
		if err == nil || !errors.As(err, &oe) || (oe.Reason != ssh.ConnectionFailed && oe.Reason != ssh.ResourceShortage) {
			return sess, err
		}
		if time.Since(start) >= sshOpenPatience {
			return nil, fmt.Errorf("%w (for %s; is the host's sshd MaxSessions below %d?)",
				err, sshOpenPatience, sshSessions)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-c.done:
			t.Stop()
			return nil, err
		case <-t.C:
		}
		wait = min(2*wait, sshOpenRetryMax)
	}
}

// sessionErr is a session's failure other than its command's: the
// connection's end when it has ended.
func (h *sshHost) sessionErr(c *sshConn, err error) error {
	select {
	case <-c.done:
		if errors.Is(c.err, errSSHClosed) {
			return errSSHClosed
		}
		err = c.err
	case <-time.After(50 * time.Millisecond):
		// The session may have failed a moment before the connection
		// is seen to: give the reason a chance to be the connection's.
	}
	return &HostError{Host: h.name, Err: fmt.Errorf("ssh %s: %w", h.addr, err)}
}

// capBuffer keeps the first 64 KiB written to it: a remote command's
// report or error message, never a stream.
type capBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *capBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := 64<<10 - w.b.Len(); room > 0 {
		w.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (w *capBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
