package master

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/lb"
	"github.com/shaddock/shaddock/master/launch"
	"github.com/shaddock/shaddock/proto/masterpb"
)

// The two-group rolling update (DESIGN §9): for group b, then group a,
// drain the group's gates at the load balancer and its frontends in the
// registry (new players go to the other group), wait for its players to
// leave (up to drainTimeout; the rest are kicked with a reason and come
// back through the balancer to the other group), stop the group, install
// the new binary beside the current one (binary.next, on every host of
// the group), start the group from it, wait until every server has
// registered on the new build, and set its gates ready at the balancer.
// The current binary is left alone until every group runs the new build,
// so a server of another group (or of no group) that restarts meanwhile
// keeps its build; only then does the new build take its place, the
// previous one kept as binary.prev. A group that fails to come up on the
// new build goes back to the current binary; the other group is not
// touched. The progress is kept in RunDir/<env>.update.json, so that a
// master that dies half-way finishes the update when it starts again.

// updateState is a rolling update's progress, as persisted.
type updateState struct {
	Build   string    `json:"build"`  // SHA-256 of the new binary, hex
	Prev    string    `json:"prev"`   // SHA-256 of the previous one (kept as binary.prev)
	Source  string    `json:"source"` // the new binary as given (its copy is the binary once installed)
	Groups  []string  `json:"groups"` // in order
	Done    []string  `json:"done"`   // groups on the new build
	Group   string    `json:"group"`  // the group being updated
	Phase   string    `json:"phase"`  // draining, stopped, installed, started, ready
	Started time.Time `json:"started"`
	Outcome string    `json:"outcome,omitempty"` // "" while under way; then done, or what failed
}

// Update phases.
const (
	phaseDraining  = "draining"
	phaseStopped   = "stopped"
	phaseInstalled = "installed"
	phaseReady     = "ready"
)

func (m *Master) updateFile() string {
	return filepath.Join(m.paths.RunDir, m.env.Name+".update.json")
}

func (m *Master) readUpdate() (*updateState, error) {
	b, err := os.ReadFile(m.updateFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var u updateState
	if err := json.Unmarshal(b, &u); err != nil {
		return nil, fmt.Errorf("read %s: %w", m.updateFile(), err)
	}
	return &u, nil
}

// saveUpdate records u, and what `master list` says of it.
func (m *Master) saveUpdate(u *updateState) {
	b, _ := json.MarshalIndent(u, "", "  ")
	if err := writeFileAtomic(m.updateFile(), append(b, '\n')); err != nil {
		m.log.Error("update progress not saved: a restarted master may not finish it", "err", err)
	}
	m.mu.Lock()
	m.updateNote = u.describe()
	m.mu.Unlock()
}

// describe is the update as `master list` shows it.
func (u *updateState) describe() string {
	s := fmt.Sprintf("update to build %s (from %s), started %s: ", short12(u.Build), short12(u.Prev), u.Started.Format(time.RFC3339))
	switch {
	case u.Outcome != "":
		return s + u.Outcome
	case u.Group != "":
		s += fmt.Sprintf("group %s %s", u.Group, u.Phase)
	}
	if len(u.Done) > 0 {
		s += fmt.Sprintf("; done: %s", strings.Join(u.Done, ", "))
	}
	return s
}

func short12(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

// Update runs a rolling update, or resumes one.
func (a adminService) Update(req *masterpb.UpdateRequest, st grpc.ServerStreamingServer[masterpb.Progress]) error {
	m := a.m
	done, err := m.beginChange()
	if err != nil {
		return err
	}
	defer done()
	p := &progress{st: st}
	defer m.forward(p)()
	u, err := m.readUpdate()
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	switch {
	case req.GetResume() && (u == nil || u.Outcome != ""):
		return status.Error(codes.FailedPrecondition, "no interrupted update to resume")
	case req.GetResume():
		p.send("resuming: "+u.describe(), false)
	case u != nil && u.Outcome == "":
		return status.Errorf(codes.FailedPrecondition, "an update is under way or was interrupted (%s): master update --resume", u.describe())
	default:
		if u, err = m.newUpdate(req); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if u == nil {
			p.send("every server already runs that build: nothing to do", false)
			return nil
		}
	}
	if err := m.runUpdate(st.Context(), u, p); err != nil {
		return status.Error(codes.Aborted, err.Error())
	}
	return nil
}

// newUpdate checks a request and records the update it starts, or returns
// nil when every server runs that build already.
func (m *Master) newUpdate(req *masterpb.UpdateRequest) (*updateState, error) {
	src, err := filepath.Abs(req.GetBinary())
	if err != nil || req.GetBinary() == "" {
		return nil, errors.New("--binary PATH: the new build, a file on the master's machine")
	}
	fi, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("new binary: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return nil, fmt.Errorf("new binary %s is not an executable file", src)
	}
	build, err := fileSHA256(src)
	if err != nil {
		return nil, err
	}
	prev, err := fileSHA256(m.binary)
	if err != nil {
		return nil, fmt.Errorf("the current binary: %w", err)
	}
	groups := req.GetGroups()
	if len(groups) == 0 {
		groups = []string{"b", "a"}
	}
	m.mu.Lock()
	upToDate := true
	for _, g := range groups {
		n := 0
		for _, srv := range m.servers {
			if srv.configured && srv.cfg.Group == g {
				n++
				if srv.info.GetBuild() != short12(build) {
					upToDate = false
				}
			}
		}
		if n == 0 {
			m.mu.Unlock()
			return nil, fmt.Errorf("group %s has no servers (servers.toml: group = %q)", g, g)
		}
	}
	m.mu.Unlock()
	if upToDate && build == prev {
		return nil, nil
	}
	u := &updateState{Build: build, Prev: prev, Source: src, Groups: groups, Started: time.Now()}
	m.saveUpdate(u)
	return u, nil
}

// runUpdate updates the groups not done yet, one after another.
func (m *Master) runUpdate(ctx context.Context, u *updateState, p *progress) error {
	m.log.Info("rolling update", "build", short12(u.Build), "from", short12(u.Prev), "groups", u.Groups, "done", u.Done)
	for _, g := range u.Groups {
		if slices.Contains(u.Done, g) {
			continue
		}
		begin := time.Now()
		if err := m.updateGroup(ctx, u, g, p); err != nil {
			u.Group, u.Phase = "", ""
			u.Outcome = fmt.Sprintf("failed at group %s: %v", g, err)
			m.saveUpdate(u)
			m.log.Error("rolling update failed", "group", g, "err", err)
			return fmt.Errorf("group %s: %w", g, err)
		}
		u.Done = append(u.Done, g)
		u.Group, u.Phase = "", ""
		m.saveUpdate(u)
		p.send(fmt.Sprintf("group %s runs build %s (%s)", g, short12(u.Build), time.Since(begin).Round(100*time.Millisecond)), false)
	}
	if err := m.finishInstall(ctx, u, p); err != nil {
		// Every group runs the new build from binary.next; what failed is
		// putting it in binary's place. --resume tries again.
		u.Outcome = ""
		m.saveUpdate(u)
		return fmt.Errorf("every group runs build %s, but: %w (master update --resume tries again)", short12(u.Build), err)
	}
	u.Outcome = "done: every group runs build " + short12(u.Build)
	m.saveUpdate(u)
	m.log.Info("rolling update done", "build", short12(u.Build))
	p.send(u.Outcome, false)
	return nil
}

// groupServers returns the ids of a group's configured servers, sorted, its
// frontends, and its gates as the balancer knows them.
func (m *Master) groupServers(g string) (ids, fronts []string, gates []lb.Gate) {
	m.mu.Lock()
	defer m.mu.Unlock()
	env := config.Env{}
	for _, id := range m.idsLocked() {
		srv := m.servers[id]
		if !srv.configured || srv.cfg.Group != g {
			continue
		}
		ids = append(ids, id)
		env.Servers = append(env.Servers, srv.cfg)
		if srv.cfg.Frontend {
			fronts = append(fronts, id)
		}
	}
	return ids, fronts, lb.Gates(&env, g)
}

// updateGroup moves one group to the new build, or back to the previous
// one if the new one does not come up.
func (m *Master) updateGroup(ctx context.Context, u *updateState, g string, p *progress) error {
	ids, fronts, gates := m.groupServers(g)
	if len(ids) == 0 {
		return fmt.Errorf("no servers in group %s", g)
	}
	bal, err := m.balancer()
	if err != nil {
		return err
	}
	if m.onBuild(ids, u.Build) {
		// Already there (an update resumed after its start): ready it.
		if sum, err := fileSHA256(m.nextBinary()); err == nil && sum == u.Build {
			m.setGroupBinary(g, m.nextBinary())
		}
		p.send(fmt.Sprintf("group %s already runs build %s", g, short12(u.Build)), false)
		return m.readyGroup(ctx, bal, g, gates, p)
	}
	u.Group, u.Phase = g, phaseDraining
	m.saveUpdate(u)
	reason := "server updating: please reconnect"
	if bal != nil && len(gates) > 0 {
		if err := bal.Drain(ctx, g, gates); err != nil {
			m.enable(ctx, bal, g, gates, p)
			return fmt.Errorf("drain the gates at the load balancer: %w", err)
		}
		p.send(fmt.Sprintf("group %s: gates %s drained at the load balancer", g, gateIDs(gates)), false)
	}
	drainFor := m.drainTimeout()
	m.mu.Lock()
	sessions := 0
	for _, id := range fronts {
		if srv := m.servers[id]; srv != nil {
			m.drainLocked(srv, reason)
			sessions += int(srv.conns)
		}
	}
	m.mu.Unlock()
	p.send(fmt.Sprintf("group %s: draining %d frontends (%d sessions; up to %s)", g, len(fronts), sessions, drainFor), false)
	stopRedrain := m.redrain(ctx, bal, g, gates)
	err = m.waitDrained(ctx, fronts, drainFor, reason, p)
	stopRedrain()
	if err != nil {
		return err
	}
	p.send(fmt.Sprintf("group %s: stopping %s", g, strings.Join(ids, ", ")), false)
	for id, r := range m.stopIDs(ctx, ids, reason) {
		if r.err != nil {
			m.restartGroup(ctx, ids)
			m.enable(ctx, bal, g, gates, p)
			return fmt.Errorf("stop %s: %w", id, r.err)
		}
	}
	u.Phase = phaseStopped
	m.saveUpdate(u)
	if err := m.install(ctx, u, ids, p); err != nil {
		p.send(fmt.Sprintf("group %s: install failed (%v); starting it again on the previous build", g, err), true)
		m.setGroupBinary(g, "")
		m.restartGroup(ctx, ids)
		m.enable(ctx, bal, g, gates, p)
		return err
	}
	u.Phase = phaseInstalled
	m.saveUpdate(u)
	m.setGroupBinary(g, m.nextBinary())
	p.send(fmt.Sprintf("group %s: starting on build %s", g, short12(u.Build)), false)
	if bad := m.startGroup(ctx, ids, u.Build, p); bad != nil {
		why := oneLine(bad.err.Error())
		p.send(fmt.Sprintf("group %s: %s did not come up on the new build (%s); back to build %s", g, bad.id, why, short12(u.Prev)), true)
		m.stopIDs(ctx, ids, "server updating: please reconnect")
		m.setGroupBinary(g, "")
		p.send(fmt.Sprintf("group %s: starting on build %s again", g, short12(u.Prev)), false)
		if again := m.startGroup(ctx, ids, u.Prev, p); again != nil {
			p.send(fmt.Sprintf("group %s: %s did not come back on the previous build either: %v", g, again.id, again.err), true)
		}
		m.enable(ctx, bal, g, gates, p)
		return fmt.Errorf("%s: %s; group %s is back on build %s", bad.id, why, g, short12(u.Prev))
	}
	return m.readyGroup(ctx, bal, g, gates, p)
}

// redrain drains the gates again every few seconds until the returned func
// is called: a balancer that reloads forgets its drained servers, and the
// group must stay drained until it is stopped.
func (m *Master) redrain(ctx context.Context, bal lb.Driver, g string, gates []lb.Gate) func() {
	if bal == nil || len(gates) == 0 {
		return func() {}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(3 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if err := bal.Drain(ctx, g, gates); err != nil {
					m.log.Warn("could not drain the gates again", "group", g, "err", err)
				}
			}
		}
	}()
	return func() {
		close(stop)
		<-done
	}
}

// readyGroup sets a group's gates ready at the balancer.
func (m *Master) readyGroup(ctx context.Context, bal lb.Driver, g string, gates []lb.Gate, p *progress) error {
	if err := m.enable(ctx, bal, g, gates, p); err != nil {
		return err
	}
	if u, _ := m.readUpdate(); u != nil && u.Outcome == "" {
		u.Phase = phaseReady
		m.saveUpdate(u)
	}
	return nil
}

// enable sets the gates ready at the balancer, and says so.
func (m *Master) enable(ctx context.Context, bal lb.Driver, g string, gates []lb.Gate, p *progress) error {
	if bal == nil || len(gates) == 0 {
		return nil
	}
	// Not the caller's context: a client that went away must not leave
	// gates drained.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := bal.Enable(ectx, g, gates); err != nil {
		p.send(fmt.Sprintf("group %s: could not set gates %s ready at the load balancer: %v", g, gateIDs(gates), err), true)
		return fmt.Errorf("enable the gates at the load balancer: %w", err)
	}
	p.send(fmt.Sprintf("group %s: gates %s ready at the load balancer", g, gateIDs(gates)), false)
	return nil
}

func gateIDs(gates []lb.Gate) string {
	ids := make([]string, len(gates))
	for i, gt := range gates {
		ids[i] = gt.ID
	}
	return strings.Join(ids, ", ")
}

// onBuild reports whether every server runs build (its registered build).
func (m *Master) onBuild(ids []string, build string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		srv := m.servers[id]
		if srv == nil || srv.state != masterpb.ServerState_RUNNING || srv.info.GetBuild() != short12(build) {
			return false
		}
	}
	return true
}

// startGroup starts the servers and waits until each runs build; it
// returns the first that did not.
func (m *Master) startGroup(ctx context.Context, ids []string, build string, p *progress) *opResult {
	since := map[string]uint64{}
	m.mu.Lock()
	for _, id := range ids {
		if srv := m.servers[id]; srv != nil {
			since[id] = srv.epoch
			srv.want, srv.hold, srv.killReq, srv.backoff, srv.nextTry, srv.autoStart = true, false, false, 0, time.Time{}, false
		}
	}
	m.notifyLocked()
	m.mu.Unlock()
	ch := make(chan opResult, len(ids))
	for _, id := range ids {
		go func() {
			ch <- m.await(ctx, id, m.startTimeout()+launchTimeout, func(srv *server) (bool, string, error) {
				done, msg, err := m.startedCheck(since[id])(srv)
				if done && err == nil && srv.info.GetBuild() != short12(build) {
					return true, "", fmt.Errorf("runs build %s, not %s", srv.info.GetBuild(), short12(build))
				}
				return done, msg, err
			})
		}()
	}
	var bad *opResult
	for range ids {
		r := <-ch
		if r.err != nil && bad == nil {
			bad = &r
		}
		if r.err == nil {
			p.send(fmt.Sprintf("%s %s", r.id, r.msg), false)
		}
	}
	return bad
}

// restartGroup starts again servers that an update stopped, after a
// failure before their new build was installed (best effort: the error is
// the update's).
func (m *Master) restartGroup(ctx context.Context, ids []string) {
	m.mu.Lock()
	for _, id := range ids {
		if srv := m.servers[id]; srv != nil {
			srv.want, srv.hold = true, false
		}
	}
	m.notifyLocked()
	m.mu.Unlock()
}

// nextBinary is where an update puts the new build: beside the binary,
// here and on every host of the groups being updated.
func (m *Master) nextBinary() string { return m.binary + ".next" }

// binaryFor returns the binary a server of group g starts from.
func (m *Master) binaryFor(g string) string {
	if bins := m.groupBin.Load(); bins != nil && g != "" {
		if b, ok := (*bins)[g]; ok {
			return b
		}
	}
	return m.binary
}

// setGroupBinary makes group g start from path ("" for the binary).
func (m *Master) setGroupBinary(g, path string) {
	for {
		old := m.groupBin.Load()
		next := map[string]string{}
		if old != nil {
			for k, v := range *old {
				next[k] = v
			}
		}
		if path == "" {
			delete(next, g)
		} else {
			next[g] = path
		}
		var p *map[string]string
		if len(next) > 0 {
			p = &next
		}
		if m.groupBin.CompareAndSwap(old, p) {
			return
		}
	}
}

// loadUpdateBinaries restores, from an update a previous master left
// half-way, which groups start from the new build, before this master
// starts anything.
func (m *Master) loadUpdateBinaries() {
	u, err := m.readUpdate()
	if err != nil || u == nil || u.Outcome != "" || !fileExists(m.nextBinary()) {
		return
	}
	if sum, err := fileSHA256(m.nextBinary()); err != nil || sum != u.Build {
		return
	}
	for _, g := range u.Done {
		m.setGroupBinary(g, m.nextBinary())
	}
	if u.Group != "" && (u.Phase == phaseInstalled || u.Phase == phaseReady) {
		m.setGroupBinary(u.Group, m.nextBinary())
	}
}

// install puts the new build at binary.next, here (the master's copy is
// the source of every upload) and on the group's other hosts.
func (m *Master) install(ctx context.Context, u *updateState, ids []string, p *progress) error {
	next := m.nextBinary()
	if cur, _ := fileSHA256(next); cur != u.Build {
		if err := copyFileAtomic(u.Source, next, 0o755); err != nil {
			return fmt.Errorf("install %s as %s: %w", u.Source, next, err)
		}
		if got, err := fileSHA256(next); err != nil || got != u.Build {
			return fmt.Errorf("install %s: the copy's checksum is %s, not %s (%v); was the file changed?", next, short12(got), short12(u.Build), err)
		}
		p.send(fmt.Sprintf("installed build %s as %s", short12(u.Build), next), false)
	}
	ins, err := m.remoteInstallers(ids)
	if err != nil {
		return err
	}
	for _, hi := range ins {
		copied, err := hi.in.Install(ctx, hi.host, next, u.Build, next, 0o755)
		if err != nil {
			return fmt.Errorf("upload to %s: %w", hi.host, err)
		}
		if copied {
			p.send(fmt.Sprintf("%s: uploaded build %s", hi.host, short12(u.Build)), false)
		}
	}
	return nil
}

// finishInstall, once every group runs the new build, puts it in the
// binary's place (the previous one kept as binary.prev), here and on the
// updated groups' other hosts, so that every later start runs it. It can
// run again: a resumed update repeats it.
func (m *Master) finishInstall(ctx context.Context, u *updateState, p *progress) error {
	next, prevPath := m.nextBinary(), m.binary+".prev"
	if cur, err := fileSHA256(m.binary); err != nil || cur != u.Build {
		if err == nil && cur == u.Prev {
			if err := copyFileAtomic(m.binary, prevPath, 0o755); err != nil {
				return fmt.Errorf("keep the previous binary: %w", err)
			}
		}
		if err := copyFileAtomic(next, m.binary, 0o755); err != nil {
			return fmt.Errorf("install build %s as %s: %w", short12(u.Build), m.binary, err)
		}
	}
	var ids []string
	m.mu.Lock()
	for id, srv := range m.servers {
		if srv.configured && slices.Contains(u.Groups, srv.cfg.Group) {
			ids = append(ids, id)
		}
	}
	m.mu.Unlock()
	ins, err := m.remoteInstallers(ids)
	if err != nil {
		return err
	}
	for _, hi := range ins {
		if _, err := hi.in.Install(ctx, hi.host, prevPath, u.Prev, prevPath, 0o755); err != nil && fileExists(prevPath) {
			return fmt.Errorf("keep the previous binary on %s: %w", hi.host, err)
		}
		if _, err := hi.in.Install(ctx, hi.host, m.binary, u.Build, m.binary, 0o755); err != nil {
			return fmt.Errorf("install build %s on %s: %w", short12(u.Build), hi.host, err)
		}
	}
	m.groupBin.Store(nil)
	p.send(fmt.Sprintf("installed build %s as %s (previous kept as %s)", short12(u.Build), m.binary, prevPath), false)
	return nil
}

// hostInstaller is a remote host and the launcher that installs files there.
type hostInstaller struct {
	host string
	in   launch.Installer
}

// remoteInstallers returns the other hosts the servers run on, sorted,
// with their installers (hosts whose launcher installs nothing are left
// out).
func (m *Master) remoteInstallers(ids []string) ([]hostInstaller, error) {
	m.mu.Lock()
	var hosts []string
	for _, id := range ids {
		if srv := m.servers[id]; srv != nil && !isLocalHost(srv.cfg.Host) && !slices.Contains(hosts, srv.cfg.Host) {
			hosts = append(hosts, srv.cfg.Host)
		}
	}
	m.mu.Unlock()
	slices.Sort(hosts)
	var out []hostInstaller
	for _, host := range hosts {
		l, err := m.hosts.launcher(host)
		if err != nil {
			return nil, err
		}
		if in, ok := l.(launch.Installer); ok {
			out = append(out, hostInstaller{host, in})
		}
	}
	return out, nil
}

// resumeUpdate finishes an update a previous master left half-way, once
// the cluster is up: the interrupted group first (it comes back on
// whatever binary is in place, then is updated or readied), then the rest.
// Nothing stays drained at the balancer.
func (m *Master) resumeUpdate() {
	u, err := m.readUpdate()
	if err != nil || u == nil || u.Outcome != "" {
		if err != nil {
			m.log.Error("cannot read the update's progress", "err", err)
		}
		return
	}
	m.changing.Lock()
	defer m.changing.Unlock()
	m.log.Warn("finishing a rolling update the previous master left half-way", "update", u.describe())
	p := &progress{log: m.log}
	if err := m.runUpdate(m.ctx, u, p); err != nil {
		m.log.Error("the interrupted update did not finish", "err", err)
	}
}

// balancer returns the load-balancer driver of the config, nil if none.
func (m *Master) balancer() (lb.Driver, error) {
	d, err := lb.New(*m.lbCfg.Load(), m.log)
	if err != nil {
		return nil, fmt.Errorf("load balancer: %w", err)
	}
	return d, nil
}

// fileSHA256 returns a file's SHA-256, hex.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("checksum %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyFileAtomic copies src over dst through a temporary file in dst's
// directory and a rename: a server starting meanwhile runs the old file or
// the new one, never half of one (and running ones keep their old file).
func copyFileAtomic(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
