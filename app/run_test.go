package app

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/rpc"
)

const testTOML = `
[dev]
binary = "bin/game"
[dev.master]
id = "master"
host = "127.0.0.1"
port = 3005
[[dev.connector]]
id = "connector-1"
host = "127.0.0.1"
port = 3150
clientPort = 3050
frontend = true
group = "a"
`

func TestSelfFromConfigOrFlags(t *testing.T) {
	env, err := config.Parse("servers.toml", []byte(testTOML), "dev")
	if err != nil {
		t.Fatal(err)
	}
	a := New()
	o, err := a.parse([]string{"--id", "connector-1"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := o.self(env)
	if err != nil || m.Type != "connector" || !m.Frontend || m.ClientPort != 3050 || m.Group != "a" {
		t.Fatalf("from config: %+v %v", m, err)
	}
	// A server added at runtime describes itself; an incomplete description fails.
	o, _ = New().parse([]string{"--id", "chat-9", "--type", "chat", "--host", "127.0.0.1", "--port", "6099"})
	if m, err := o.self(env); err != nil || m.Type != "chat" || m.Port != 6099 {
		t.Fatalf("from flags: %+v %v", m, err)
	}
	o, _ = New().parse([]string{"--id", "chat-9", "--type", "chat"})
	if _, err := o.self(env); err == nil || !strings.Contains(err.Error(), "give --type, --host, --port") {
		t.Fatalf("incomplete: %v", err)
	}
	if _, err := New().parse(nil); err == nil {
		t.Fatal("missing --id accepted")
	}
}

func TestRunRefusesWithoutSecret(t *testing.T) {
	t.Setenv(SecretEnv, "")
	dir := t.TempDir()
	path := dir + "/servers.toml"
	if err := writeFile(path, testTOML); err != nil {
		t.Fatal(err)
	}
	err := New().Run(context.Background(), []string{"--env", "dev", "--id", "connector-1", "--config", path})
	if err == nil || !strings.Contains(err.Error(), SecretEnv) {
		t.Fatalf("err = %v", err)
	}
}

func TestClientListenHost(t *testing.T) {
	for _, tt := range []struct {
		m    rpc.Member
		want string
	}{
		{rpc.Member{Host: "127.0.0.1"}, "127.0.0.1"},                         // no clientHost: the host
		{rpc.Member{Host: "10.0.0.1", ClientHost: "127.0.0.2"}, "127.0.0.2"}, // loopback: bind it
		{rpc.Member{Host: "10.0.0.1", ClientHost: "chat.example.com"}, ""},   // a name: every interface
		{rpc.Member{Host: "10.0.0.1", ClientHost: "203.0.113.7"}, ""},        // not ours (NAT): every interface
	} {
		if got := clientListenHost(tt.m); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.m, got, tt.want)
		}
	}
}

func TestCallNeedsARunningApp(t *testing.T) {
	a := New()
	a.Remote("chat.chatRemote.add", handler.Remote(func(ctx context.Context, req *struct{}) (*struct{}, error) { return req, nil }))
	if err := a.Call(context.Background(), "chat.chatRemote.add", "k", struct{}{}, nil); err == nil {
		t.Fatal("Call before Run succeeded")
	}
	if a.Membership() == nil {
		t.Fatal("membership must exist before Run (handlers hold it)")
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }
