// Package gate answers the question every client asks first: which
// connector should I hold my connection to? It implements Pomelo's
// gate.gateHandler.queryEntry: the connector at
// abs(int32(crc32(uid))) % n among the eligible connectors sorted by id,
// so a user lands on the same connector every time the topology is the same.
//
// Eligible means registered and running, reachable from the gate, and in
// the gate's group (or of no group) when the gate has one: rolling updates
// send a group's clients to that group's connectors. A gate whose group
// has no eligible connector left (its group is draining for an update and
// a client reached it just before the balancer stopped sending it any)
// hands out a connector of another group rather than refuse the client;
// and when it can reach none, one that runs (its reach lags a connector
// that has just registered). Draining connectors are not running, so they
// are never offered.
package gate

import (
	"context"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/rpc"
)

// Route is the route the gate serves.
const Route = "gate.gateHandler.queryEntry"

// Config configures the dispatcher.
type Config struct {
	Membership    *rpc.Membership
	ConnectorType string // server type to hand out; default "connector"
	Group         string // the gate's group; "" means any
}

// Request is the queryEntry body.
type Request struct {
	UID string `json:"uid"`
}

// Response is the queryEntry answer: {code:200, host, port} or {code:500}.
type Response struct {
	Code int    `json:"code"`
	Host string `json:"host,omitempty"`
	Port int    `json:"port,omitempty"`
}

// Pick returns the connector for uid, or false if none is eligible.
func Pick(cfg Config, uid string) (rpc.Member, bool) {
	typ := cfg.ConnectorType
	if typ == "" {
		typ = "connector"
	}
	if m, ok := pickIn(uid, cfg.Group, cfg.Membership.EligibleAnyGroup(typ)); ok {
		return m, true
	}
	// Nothing running that this gate can reach. Its reach is only a hint
	// (the client connects to the connector, not through the gate): a
	// connector that has just registered may not be connected from here
	// yet, so hand out a running one rather than refuse the client. One on
	// a host that is really cut off is marked lost by the master within
	// seconds.
	var running []rpc.Member
	for _, m := range cfg.Membership.All() { // sorted by id
		if m.Type == typ && m.State == rpc.StateRunning {
			running = append(running, m)
		}
	}
	return pickIn(uid, cfg.Group, running)
}

// pickIn picks uid's connector among list (sorted by id): among those of
// group (or of no group) when there are any, else among all of them.
func pickIn(uid, group string, list []rpc.Member) (rpc.Member, bool) {
	eligible := list
	if group != "" {
		eligible = make([]rpc.Member, 0, len(list))
		for _, m := range list {
			if m.Group == group || m.Group == "" {
				eligible = append(eligible, m)
			}
		}
		if len(eligible) == 0 {
			eligible = list
		}
	}
	m, err := rpc.Pick(uid, eligible)
	return m, err == nil
}

// QueryEntry returns the handler for Route.
func QueryEntry(cfg Config) handler.Func {
	return handler.Typed(func(ctx context.Context, s handler.Session, req *Request) (*Response, error) {
		if req.UID == "" {
			return &Response{Code: 500}, nil
		}
		m, ok := Pick(cfg, req.UID)
		if !ok {
			return &Response{Code: 500}, nil
		}
		host := m.ClientHost
		if host == "" {
			host = m.Host
		}
		return &Response{Code: 200, Host: host, Port: m.ClientPort}, nil
	})
}
