package lb

import (
	"errors"
	"strings"
	"testing"

	"github.com/shaddock/shaddock/config"
)

func TestNew(t *testing.T) {
	d, err := New(config.LB{}, nil)
	if d != nil || err != nil {
		t.Errorf("New(no driver) = %v, %v; want nil, nil", d, err)
	}
	for _, tc := range []struct {
		cfg  config.LB
		want string // error text; "" means it works
	}{
		{config.LB{Driver: "haproxy", HAProxySocket: "unix:/run/haproxy/admin.sock", HAProxyBackend: "gates"}, ""},
		{config.LB{Driver: "haproxy", HAProxySocket: "127.0.0.1:9999", HAProxyBackend: "gates"}, ""},
		{config.LB{Driver: "haproxy", HAProxySocket: "[::1]:9999", HAProxyBackend: "gates"}, ""},
		{config.LB{Driver: "haproxy", HAProxySocket: "unix:", HAProxyBackend: "gates"}, "empty path"},
		{config.LB{Driver: "haproxy", HAProxySocket: "/run/haproxy.sock", HAProxyBackend: "gates"}, `"unix:PATH" or "HOST:PORT"`},
		{config.LB{Driver: "haproxy", HAProxySocket: "127.0.0.1:99999", HAProxyBackend: "gates"}, `"unix:PATH" or "HOST:PORT"`},
		{config.LB{Driver: "haproxy", HAProxySocket: "127.0.0.1:9999"}, "haproxyBackend is empty"},
		{config.LB{Driver: "command", DrainCommand: "true", EnableCommand: "true"}, ""},
		{config.LB{Driver: "command", DrainCommand: "true"}, "enableCommand"},
		{config.LB{Driver: "f5"}, `"f5"`},
	} {
		d, err := New(tc.cfg, nil)
		if tc.want == "" {
			if err != nil || d == nil {
				t.Errorf("New(%+v) = %v, %v", tc.cfg, d, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) error %v, want it to contain %q", tc.cfg, err, tc.want)
		}
	}
}

// TestSrvState: HAProxy's admin bits and operational state, folded into
// what happens to new connections.
func TestSrvState(t *testing.T) {
	for _, tc := range []struct {
		s    srvState
		want State
	}{
		{srvState{op: opRunning, admin: 0, weight: 1}, Ready},
		{srvState{op: opStarting, admin: 0, weight: 1}, Ready},        // slowstart: takes traffic
		{srvState{op: opRunning, admin: admFDrain, weight: 1}, Drain}, // set server state drain
		{srvState{op: opStopped, admin: admFDrain, weight: 1}, Drain}, // drained and stopped: what was asked wins
		{srvState{op: opRunning, admin: admIDrain, weight: 1}, Drain}, // inherited from a tracked server
		{srvState{op: opRunning, admin: admFMaint, weight: 1}, Maint}, // set server state maint
		{srvState{op: opStopped, admin: 0x05, weight: 1}, Maint},      // "disabled" in the config
		{srvState{op: opRunning, admin: admCMaint, weight: 1}, Ready}, // "disabled", then set ready
		{srvState{op: opRunning, admin: admIMaint, weight: 1}, Maint}, // inherited
		{srvState{op: opRunning, admin: admRMaint, weight: 1}, Maint}, // address did not resolve
		{srvState{op: opRunning, admin: 0x40, weight: 1}, Ready},      // FQDN changed: not a state
		{srvState{op: opRunning, admin: admFMaint | admFDrain, weight: 1}, Maint},
		{srvState{op: opStopped, admin: 0, weight: 1}, Down},   // failing its health check
		{srvState{op: opStopping, admin: 0, weight: 1}, Drain}, // soft-stopping by its check
		{srvState{op: opRunning, admin: 0, weight: 0}, Drain},  // weight 0 takes no new connections
	} {
		if got := tc.s.state(); got != tc.want {
			t.Errorf("%+v.state() = %s, want %s", tc.s, got, tc.want)
		}
	}
}

// dump26 is "show servers state" as HAProxy 2.6.12 prints it.
const dump26 = `1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 gates 1 gate-a 127.0.0.1 2 8 1 1 1 8 2 0 6 0 0 0 - 19101 - 0 0 - - 0
3 gates 2 gate-b 127.0.0.1 0 0 1 1 3 8 2 0 6 0 0 0 - 19102 - 0 0 - - 0
3 gates 3 gate-c 127.0.0.1 0 5 1 1 3 1 0 0 8 0 0 0 - 19103 - 0 0 - - 0
4 other 1 gate-a 10.0.0.1 2 1 1 1 3 1 0 0 8 0 0 0 - 19103 - 0 0 - - 0

`

func TestParseServersState(t *testing.T) {
	got, err := parseServersState(dump26, "gates")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]srvState{
		"gate-a": {op: 2, admin: 8, weight: 1},
		"gate-b": {op: 0, admin: 0, weight: 1},
		"gate-c": {op: 0, admin: 5, weight: 1},
	}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %+v, want %+v", k, got[k], v)
		}
	}

	// Columns are found by name: another order, fewer columns, parse the same.
	reordered := "1\n# srv_name be_name srv_uweight srv_admin_state srv_op_state\ngate-a gates 1 8 2\n"
	if got, err := parseServersState(reordered, "gates"); err != nil || got["gate-a"] != (srvState{op: 2, admin: 8, weight: 1}) {
		t.Errorf("reordered: %v %v", got, err)
	}
	// An empty backend is a dump with no lines.
	if got, err := parseServersState("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight\n\n", "gates"); err != nil || len(got) != 0 {
		t.Errorf("empty backend: %v %v", got, err)
	}

	for _, bad := range []struct{ in, want string }{
		{"Can't find backend.\n\n", "not a servers state dump"},
		{"Permission denied\n\n", "not a servers state dump"},
		{"", "not a servers state dump"},
		{"1\n# be_name srv_name srv_op_state\n", "no column srv_admin_state"},
		{"1\n# be_name srv_name srv_op_state srv_admin_state srv_uweight\ngates gate-a 2\n", "line 3 has no column srv_admin_state"},
		{"1\n# be_name srv_name srv_op_state srv_admin_state srv_uweight\ngates gate-a 2 x 1\n", `srv_admin_state "x" is not a number`},
	} {
		_, err := parseServersState(bad.in, "gates")
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("parse %q: %v, want %q", bad.in, err, bad.want)
		}
	}
	if _, err := parseServersState("Can't find backend.\n", "gates"); !errors.Is(err, errNotState) {
		t.Errorf("error answer: %v is not errNotState", err)
	}
}

// FuzzParseServersState: whatever a socket answers, parsing does not panic.
func FuzzParseServersState(f *testing.F) {
	f.Add(dump26)
	f.Add("Can't find backend.\n")
	f.Add("1\n# be_name srv_name srv_op_state srv_admin_state srv_uweight\ngates a 1 2\n")
	f.Fuzz(func(t *testing.T, s string) {
		parseServersState(s, "gates")
	})
}
