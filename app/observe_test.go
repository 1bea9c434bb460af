package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/tools/client"
)

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger(&buf, "", "json", slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	log.With("server", "chat-1", "type", "chat").Info("server running", "pid", 7)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil || line["server"] != "chat-1" || line["type"] != "chat" || line["msg"] != "server running" {
		t.Fatalf("json line %q: %v", buf.String(), err)
	}
	buf.Reset()
	if log, err = newLogger(&buf, "text", "json", slog.LevelInfo); err != nil { // the flag wins
		t.Fatal(err)
	}
	log.Info("hello")
	if !strings.HasPrefix(buf.String(), "time=") {
		t.Fatalf("text line %q", buf.String())
	}
	if _, err := newLogger(&buf, "xml", "", slog.LevelInfo); err == nil {
		t.Fatal("--log-format xml accepted")
	}
}

// freePort returns a loopback port nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// A frontend with a metricsPort serves /metrics on its host while it runs:
// its sessions, and each request once. No master here: the server waits
// for one (5 s), then serves with an empty cluster view.
func TestRunServesMetrics(t *testing.T) {
	master, port, clientPort, metricsPort := freePort(t), freePort(t), freePort(t), freePort(t)
	path := t.TempDir() + "/servers.toml"
	if err := writeFile(path, fmt.Sprintf(`[dev]
binary = "bin/game"
[dev.master]
id = "master"
host = "127.0.0.1"
port = %d
[[dev.connector]]
id = "connector-1"
host = "127.0.0.1"
port = %d
clientPort = %d
metricsPort = %d
frontend = true
`, master, port, clientPort, metricsPort)); err != nil {
		t.Fatal(err)
	}
	t.Setenv(SecretEnv, "secret")
	a := New()
	a.Handle("connector.entryHandler.hello", handler.Typed(func(ctx context.Context, s handler.Session, req *struct{}) (*struct{}, error) {
		return &struct{}{}, nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- a.Run(ctx, []string{"--env", "dev", "--id", "connector-1", "--config", path, "--log-level", "error"})
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Run did not return")
		}
	}()

	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	get := func() string {
		resp, err := http.Get(url)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	waitText := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if strings.Contains(get(), want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q in:\n%s", want, get())
			}
		}
	}
	waitText(`shaddock_server_info{build=`)
	var c *client.Client
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var err error
		if c, err = client.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", clientPort), client.Options{}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial the client port: %v", err)
		}
	}
	defer c.Close()
	waitText("shaddock_sessions 1")
	if _, err := c.Request(ctx, "connector.entryHandler.hello", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Request(ctx, "connector.entryHandler.nosuch", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	waitText(`shaddock_requests_total{code="200",route="connector.entryHandler.hello"} 1`)
	waitText(`shaddock_requests_total{code="404",route="other"} 1`)
	waitText(`shaddock_server_info{build=`)
	if text := get(); !strings.Contains(text, `id="connector-1",type="connector"} 1`) {
		t.Errorf("server info:\n%s", text)
	}
}
