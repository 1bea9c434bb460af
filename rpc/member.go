package rpc

import (
	"net"
	"strconv"
	"time"

	"github.com/shaddock/shaddock/proto/masterpb"
)

// State is a server's lifecycle state as the registry reports it.
type State = masterpb.ServerState

// States, re-exported for readability at call sites.
const (
	StateStarting = masterpb.ServerState_STARTING
	StateRunning  = masterpb.ServerState_RUNNING
	StateDraining = masterpb.ServerState_DRAINING
	StateStopping = masterpb.ServerState_STOPPING
	StateStopped  = masterpb.ServerState_STOPPED
	StateLost     = masterpb.ServerState_LOST
)

// StateFailed is a server that could not be started.
const StateFailed = masterpb.ServerState_FAILED

// Instance names one process of a server: its id and epoch. State that
// points at a server's sessions or holds a key for it names the instance,
// so a restarted server (a higher epoch) is never taken for its
// predecessor. Epoch 0 (a server the master did not start) matches any.
type Instance struct {
	ID    string
	Epoch uint64
}

func (i Instance) String() string { return i.ID + "#" + strconv.FormatUint(i.Epoch, 10) }

// Member is one server of the cluster.
type Member struct {
	ID, Type   string
	Host       string
	Port       int
	ClientHost string
	ClientPort int
	Frontend   bool
	Group      string
	PID        int
	Build      string
	Started    time.Time
	// Epoch names the instance: a restarted server has a higher one (0 for
	// a server the master did not start).
	Epoch uint64
	State State
}

// Instance returns the member's instance.
func (m Member) Instance() Instance { return Instance{m.ID, m.Epoch} }

// Addr is the member's cluster (gRPC) address.
func (m Member) Addr() string { return net.JoinHostPort(m.Host, strconv.Itoa(m.Port)) }

// ToProto converts m for the registry.
func (m Member) ToProto() *masterpb.Member {
	return &masterpb.Member{State: m.State, Info: &masterpb.ServerInfo{
		Id: m.ID, Type: m.Type, Host: m.Host, Port: int32(m.Port),
		ClientHost: m.ClientHost, ClientPort: int32(m.ClientPort), Frontend: m.Frontend,
		Group: m.Group, Pid: int32(m.PID), Build: m.Build, StartedUnixMs: m.Started.UnixMilli(), Epoch: m.Epoch,
	}}
}

// MemberFromProto converts a registry member.
func MemberFromProto(p *masterpb.Member) Member {
	i := p.GetInfo()
	m := Member{
		ID: i.GetId(), Type: i.GetType(), Host: i.GetHost(), Port: int(i.GetPort()),
		ClientHost: i.GetClientHost(), ClientPort: int(i.GetClientPort()), Frontend: i.GetFrontend(),
		Group: i.GetGroup(), PID: int(i.GetPid()), Build: i.GetBuild(), Epoch: i.GetEpoch(), State: p.GetState(),
	}
	if ms := i.GetStartedUnixMs(); ms > 0 {
		m.Started = time.UnixMilli(ms)
	}
	return m
}
