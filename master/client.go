package master

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/proto/masterpb"
)

// Client talks to the running master of one environment through its admin
// API. It is what the `master` CLI is made of.
type Client struct {
	Env   *config.Env
	Paths Paths
	cc    *grpc.ClientConn
	admin masterpb.AdminClient
}

// Dial loads env from the config file and connects to its running master,
// with the token from the default run directory (run/ beside the config).
// It fails with ErrNotRunning (wrapped) if no master runs for env.
func Dial(ctx context.Context, env, configPath string) (*Client, error) {
	abs, err := filepath.Abs(configPath)
	if err != nil {
		return nil, err
	}
	e, err := config.Load(abs, env)
	if err != nil {
		return nil, err
	}
	return DialEnv(ctx, e, DefaultPaths(abs))
}

// DialEnv is Dial for a loaded environment and explicit paths.
func DialEnv(_ context.Context, env *config.Env, paths Paths) (*Client, error) {
	if _, err := paths.MasterPID(env.Name); err != nil {
		return nil, err
	}
	token, err := readToken(paths.TokenFile(env.Name))
	if err != nil {
		return nil, fmt.Errorf("dial master of env %s: %w", env.Name, err)
	}
	addr := net.JoinHostPort(env.Master.Host, strconv.Itoa(env.Master.Port))
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(tokenCreds(token)))
	if err != nil {
		return nil, fmt.Errorf("dial master %s: %w", addr, err)
	}
	return &Client{Env: env, Paths: paths, cc: cc, admin: masterpb.NewAdminClient(cc)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.cc.Close() }

// List returns the servers and their state.
func (c *Client) List(ctx context.Context) (*masterpb.ListReply, error) {
	rep, err := c.admin.List(ctx, &masterpb.ListRequest{})
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	return rep, nil
}

// Stop stops the selected servers (and the master, if req.Master), calling
// progress with each line as it comes; it returns when the master has
// answered for every server.
func (c *Client) Stop(ctx context.Context, req *masterpb.StopRequest, progress func(*masterpb.Progress)) error {
	st, err := c.admin.Stop(ctx, req)
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	return drain("stop", st, progress)
}

// Kill kills the selected servers.
func (c *Client) Kill(ctx context.Context, sel *masterpb.Selector, progress func(*masterpb.Progress)) error {
	st, err := c.admin.Kill(ctx, &masterpb.StopRequest{Select: sel})
	if err != nil {
		return fmt.Errorf("kill: %w", err)
	}
	return drain("kill", st, progress)
}

// Restart restarts the selected servers, one after another, and returns
// when each runs again (or at the first failure).
func (c *Client) Restart(ctx context.Context, sel *masterpb.Selector, reason string, progress func(*masterpb.Progress)) error {
	st, err := c.admin.Restart(ctx, &masterpb.StopRequest{Select: sel, Reason: reason})
	if err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	return drain("restart", st, progress)
}

// Reload has the master re-read servers.toml and apply the difference.
func (c *Client) Reload(ctx context.Context, progress func(*masterpb.Progress)) error {
	st, err := c.admin.Reload(ctx, &masterpb.ReloadRequest{})
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	return drain("reload", st, progress)
}

// Add adds one server, given as servers.toml keys, and starts it.
func (c *Client) Add(ctx context.Context, fields map[string]string, progress func(*masterpb.Progress)) error {
	st, err := c.admin.Add(ctx, &masterpb.AddRequest{Fields: fields})
	if err != nil {
		return fmt.Errorf("add: %w", err)
	}
	return drain("add", st, progress)
}

// Remove drains, stops and forgets the selected servers.
func (c *Client) Remove(ctx context.Context, sel *masterpb.Selector, reason string, progress func(*masterpb.Progress)) error {
	st, err := c.admin.Remove(ctx, &masterpb.StopRequest{Select: sel, Reason: reason})
	if err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	return drain("remove", st, progress)
}

// Update runs (or resumes) a rolling update.
func (c *Client) Update(ctx context.Context, req *masterpb.UpdateRequest, progress func(*masterpb.Progress)) error {
	st, err := c.admin.Update(ctx, req)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	return drain("update", st, progress)
}

// Start starts the selected servers and waits until they run.
func (c *Client) Start(ctx context.Context, sel *masterpb.Selector, progress func(*masterpb.Progress)) error {
	st, err := c.admin.Start(ctx, &masterpb.StartRequest{Select: sel})
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	return drain("start", st, progress)
}

func drain(op string, st grpc.ServerStreamingClient[masterpb.Progress], progress func(*masterpb.Progress)) error {
	for {
		p, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if progress != nil {
			progress(p)
		}
	}
}

// StopAll stops every server and then the master, and returns once all of
// them have exited: it checks each server's pid, and that the master has
// released its pid file (and its process is gone).
func (c *Client) StopAll(ctx context.Context, reason string, progress func(*masterpb.Progress)) error {
	rep, err := c.List(ctx)
	if err != nil {
		return err
	}
	stopErr := c.Stop(ctx, &masterpb.StopRequest{Reason: reason, Master: true}, progress)
	var errs []error
	if stopErr != nil && status.Code(stopErr) != codes.Unavailable {
		errs = append(errs, stopErr)
	}
	if err := WaitMasterExit(ctx, c.Paths, c.Env.Name, int(rep.MasterPid)); err != nil {
		errs = append(errs, err)
	}
	if err := WaitExited(ctx, pidsOf(rep, nil)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// StopServers stops the selected servers and returns once their processes
// (as listed before the stop) have exited.
func (c *Client) StopServers(ctx context.Context, sel *masterpb.Selector, reason string, progress func(*masterpb.Progress)) error {
	rep, err := c.List(ctx)
	if err != nil {
		return err
	}
	if err := c.Stop(ctx, &masterpb.StopRequest{Select: sel, Reason: reason}, progress); err != nil {
		return err
	}
	return WaitExited(ctx, pidsOf(rep, sel))
}

// pidsOf returns the pids of the selected servers on this machine (the
// master itself waits for remote ones before it answers).
func pidsOf(rep *masterpb.ListReply, sel *masterpb.Selector) map[string]int {
	pids := map[string]int{}
	for _, s := range rep.GetServers() {
		i := s.GetInfo()
		if i.GetPid() > 0 && isLocalHost(i.GetHost()) && selected(sel, i.GetId(), i.GetType(), i.GetGroup()) {
			pids[i.GetId()] = int(i.GetPid())
		}
	}
	return pids
}

// WaitExited waits until none of the processes (id → pid) is alive.
func WaitExited(ctx context.Context, pids map[string]int) error {
	for {
		var left []string
		for _, id := range sortedIDs(keys(pids)) {
			if alive(pids[id]) {
				left = append(left, fmt.Sprintf("%s (pid %d)", id, pids[id]))
			}
		}
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("still running: %s: %w", strings.Join(left, ", "), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitMasterExit waits until env's master has released its pid file and its
// process (pid, if not this process) is gone.
func WaitMasterExit(ctx context.Context, paths Paths, env string, pid int) error {
	for {
		_, err := paths.MasterPID(env)
		gone := errors.Is(err, ErrNotRunning) && (pid <= 0 || pid == os.Getpid() || !alive(pid))
		if gone {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("master of env %s (pid %d) has not exited: %w", env, pid, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WriteTable prints a List reply as a table.
func WriteTable(w io.Writer, rep *masterpb.ListReply) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tHOST:PORT\tCLIENT\tGROUP\tSTATE\tPID\tUPTIME\tCONNS\tBUILD\tREASON")
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, s := range rep.GetServers() {
		i := s.GetInfo()
		client := "-"
		if i.GetClientPort() > 0 {
			client = net.JoinHostPort(i.GetClientHost(), strconv.Itoa(int(i.GetClientPort())))
		}
		pid, uptime, conns := "-", "-", "-"
		if i.GetPid() > 0 {
			pid = strconv.Itoa(int(i.GetPid()))
			conns = strconv.Itoa(int(s.GetConnections()))
			if s.GetUptimeMs() > 0 {
				uptime = formatUptime(time.Duration(s.GetUptimeMs()) * time.Millisecond)
			}
		}
		state := stateName(s.GetState())
		if s.GetRestarts() > 0 {
			state += fmt.Sprintf(" (%d restarts)", s.GetRestarts())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i.GetId(), dash(i.GetType()),
			net.JoinHostPort(i.GetHost(), strconv.Itoa(int(i.GetPort()))), client, dash(i.GetGroup()),
			state, pid, uptime, conns, dash(i.GetBuild()), dash(short(oneLine(s.GetReason()), reasonWidth)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Reasons too long for the table follow it whole (a host key error
	// says which file and line, and how to fix it).
	for _, s := range rep.GetServers() {
		if r := oneLine(s.GetReason()); len([]rune(r)) > reasonWidth {
			fmt.Fprintf(w, "%s %s: %s\n", s.GetInfo().GetId(), stateName(s.GetState()), r)
		}
	}
	if u := rep.GetUpdate(); u != "" {
		fmt.Fprintln(w, u)
	}
	_, err := fmt.Fprintf(w, "env %s, master %s pid %d\n", rep.GetEnv(), rep.GetMasterId(), rep.GetMasterPid())
	return err
}

// reasonWidth is how much of a reason the table shows.
const reasonWidth = 60

// short cuts s to n runes, marking the cut.
func short(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// oneLine keeps a reason to its first line, for the table.
func oneLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// stateName is a state as `master list` shows it: starting, running, ...
func stateName(s masterpb.ServerState) string {
	if s == masterpb.ServerState_SERVER_STATE_UNSPECIFIED {
		return "-"
	}
	return strings.ToLower(s.String())
}

func formatUptime(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd%dh", d/(24*time.Hour), (d%(24*time.Hour))/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", d/time.Hour, (d%time.Hour)/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%ds", d/time.Minute, (d%time.Minute)/time.Second)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}
