package master

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shaddock/shaddock/proto/masterpb"
)

// firstStart follows the master's start of the cluster until every
// configured server runs, or each one runs or has failed, or the start
// timeout has passed, and reports it: a progress line per server as it
// registers or fails (written where they happen), then a summary. A failed
// start stops what it started and ends the master, unless KeepGoing.
func (m *Master) firstStart() {
	defer m.wg.Done()
	begin := time.Now()
	m.mu.Lock()
	_, total := m.countsLocked()
	m.mu.Unlock()
	if remote := m.remoteHosts(); len(remote) > 0 {
		m.note(fmt.Sprintf("starting %d servers; remote hosts over SSH: %s", total, strings.Join(remote, ", ")), false)
	}
	deadline := time.NewTimer(launchTimeout + m.startTimeout())
	defer deadline.Stop()
	var running, failed, waiting []string
	for {
		m.mu.Lock()
		running, failed, waiting = m.startOutcomeLocked()
		ch := m.changed
		closing := m.closing
		m.mu.Unlock()
		if closing {
			m.finishStart(errors.New("the master stopped before the cluster was up"))
			return
		}
		if len(waiting) == 0 {
			break
		}
		select {
		case <-ch:
			continue
		case <-deadline.C:
		case <-m.ctx.Done():
			m.finishStart(errors.New("the master stopped before the cluster was up"))
			return
		}
		for _, id := range waiting {
			m.note(fmt.Sprintf("%s is not running after %s", id, (launchTimeout+m.startTimeout()).Round(time.Second)), true)
		}
		failed = append(failed, waiting...)
		break
	}
	took := time.Since(begin).Round(10 * time.Millisecond)
	if len(failed) == 0 && len(running) < total {
		m.note(fmt.Sprintf("env %s: start ended with %d of %d servers running; the others were stopped meanwhile", m.env.Name, len(running), total), false)
		m.finishStart(nil)
		return
	}
	if len(failed) == 0 {
		hosts := fmt.Sprintf("%d hosts", m.hostCount())
		if hosts == "1 hosts" {
			hosts = "1 host"
		}
		m.note(fmt.Sprintf("env %s is up: all %d servers running on %s (%s)", m.env.Name, len(running), hosts, took), false)
		m.finishStart(nil)
		m.resumeUpdate()
		return
	}
	err := fmt.Errorf("%d of %d servers did not start: %s", len(failed), total, strings.Join(failed, ", "))
	if m.keepGoing {
		m.note(fmt.Sprintf("%v; keeping the %d that run (--keep-going)", err, len(running)), true)
		m.finishStart(err)
		return
	}
	m.note(fmt.Sprintf("%v; stopping what this start started", err), true)
	m.abortStart()
	m.finishStart(err)
	m.requestStop(err)
}

// finishStart ends the start phase and reports its outcome once.
func (m *Master) finishStart(err error) {
	m.initial.Store(false)
	m.progress.close(5 * time.Second) // the lines before the outcome
	if m.ready != nil {
		m.ready(err)
	}
}

// startOutcomeLocked sorts the configured servers: running, failed (or
// lost, or stopped by someone meanwhile), and still on their way.
func (m *Master) startOutcomeLocked() (running, failed, waiting []string) {
	for _, id := range m.idsLocked() {
		srv := m.servers[id]
		if !srv.configured {
			continue
		}
		switch {
		case srv.state == masterpb.ServerState_RUNNING, srv.state == masterpb.ServerState_DRAINING:
			// Draining (told so by an earlier master, in an update that
			// is resumed next) is serving.
			running = append(running, id)
		case srv.state == masterpb.ServerState_FAILED, srv.state == masterpb.ServerState_LOST:
			failed = append(failed, id)
		case srv.state == masterpb.ServerState_STOPPED && !srv.want:
			// stopped by a command during the start: not a failure
		default:
			waiting = append(waiting, id)
		}
	}
	return running, failed, waiting
}

// abortStart stops every server this start started (not the ones it
// adopted) and waits, bounded, until they have exited.
func (m *Master) abortStart() {
	m.mu.Lock()
	var ours []*server
	for _, srv := range m.servers {
		if srv.starting || (srv.inst != nil && !srv.inst.adopted) {
			srv.want, srv.stopReason = false, "the cluster failed to start"
			ours = append(ours, srv)
		}
	}
	m.notifyLocked()
	m.mu.Unlock()
	deadline := time.NewTimer(termAfter + killAfter + 5*time.Second)
	defer deadline.Stop()
	for {
		m.mu.Lock()
		left := 0
		for _, srv := range ours {
			if srv.hasProc() {
				left++
			}
		}
		ch := m.changed
		m.mu.Unlock()
		if left == 0 {
			if len(ours) > 0 {
				m.note(fmt.Sprintf("stopped the %d servers this start started", len(ours)), false)
			}
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			m.note(fmt.Sprintf("%d servers still running after the stop", left), true)
			return
		case <-m.ctx.Done():
			return
		}
	}
}

// hostCount is how many hosts the config spreads its servers over.
func (m *Master) hostCount() int { return len(m.configuredHosts()) }
