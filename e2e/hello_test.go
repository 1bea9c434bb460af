package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shaddock/shaddock/tools/client"
)

// TestHelloExample runs the README's "write your own game" example through
// the master: a custom backend type with a handler and a remote.
func TestHelloExample(t *testing.T) {
	dir := t.TempDir()
	client1 := freePort(t)
	cfg := fmt.Sprintf(`
[development]
binary = %q
[development.master]
id = "master"
host = "127.0.0.1"
port = %d
[[development.connector]]
id = "connector-1"
host = "127.0.0.1"
port = %d
clientPort = %d
frontend = true
[[development.room]]
id = "room-0"
host = "127.0.0.1"
port = %d
[[development.room]]
id = "room-1"
host = "127.0.0.1"
port = %d
`, binPath("hello"), freePort(t), freePort(t), client1, freePort(t), freePort(t))
	path := filepath.Join(dir, "servers.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cl := &Cluster{t: t, Dir: dir, Config: path}
	t.Cleanup(cl.stopAndCheck)
	if out, err := cl.Master(60*time.Second, "start", "--daemon"); err != nil {
		t.Fatalf("master start: %v\n%s\n%s", err, out, cl.Logs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type roomResp struct {
		Room    string `json:"room"`
		Members int    `json:"members"`
	}
	dial := func() *client.Client {
		c, err := client.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", client1), client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := dial(), dial()
	// Routing needs the room first: without it the route function refuses.
	out, err := a.Request(ctx, "room.roomHandler.join", nil)
	if err != nil || string(out) != `{"code":400,"msg":"enter a room first"}` {
		t.Fatalf("join before enter: %s %v", out, err)
	}
	// Both enter room "blue" on the connector; their joins then route by
	// the room setting to the same room server, which counts them.
	var r roomResp
	for i, c := range []*client.Client{a, b} {
		if err := c.RequestJSON(ctx, "connector.helloHandler.enter", map[string]string{"room": "blue"}, &r); err != nil || r.Room != "blue" {
			t.Fatalf("enter %d: %+v %v", i, r, err)
		}
		if err := c.RequestJSON(ctx, "room.roomHandler.join", struct{}{}, &r); err != nil || r.Members != i+1 {
			t.Fatalf("join %d: %+v %v", i, r, err)
		}
	}
	// The connector calls the remote on the room's server.
	if err := a.RequestJSON(ctx, "connector.helloHandler.count", map[string]string{"room": "blue"}, &r); err != nil || r.Members != 2 {
		t.Fatalf("count via remote: %+v %v", r, err)
	}
	// The setting the room server made came back to the connector.
	var who struct {
		Session  int64             `json:"session"`
		Frontend string            `json:"frontend"`
		Settings map[string]string `json:"settings"`
	}
	if err := a.RequestJSON(ctx, "connector.helloHandler.whoami", struct{}{}, &who); err != nil ||
		who.Frontend != "connector-1" || who.Settings["joined"] != "blue" || who.Settings["room"] != "blue" {
		t.Fatalf("whoami: %+v %v", who, err)
	}
	// Errors reach the client as {code, msg}.
	out, err = a.Request(ctx, "connector.helloHandler.enter", []byte(`{}`))
	if err != nil || !strings.Contains(string(out), `"code":400`) {
		t.Fatalf("enter without a room: %s %v", out, err)
	}
}
