package master

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/shaddock/shaddock/app"
	"github.com/shaddock/shaddock/config"
)

func TestStateFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.state.json")
	empty, err := readState(path)
	if err != nil || len(empty.Servers) != 0 {
		t.Fatalf("missing file: got %+v, %v; want an empty state", empty, err)
	}
	want := State{Env: "test", Servers: map[string]StateEntry{
		"chat-server-1":      {PID: 1234, Binary: "/opt/chat/bin/chat", Started: time.UnixMilli(1_700_000_000_123).UTC()},
		"connector-server-1": {PID: 99, Binary: "/opt/chat/bin/chat", Started: time.UnixMilli(1_700_000_001_000).UTC()},
	}}
	if err := writeState(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := readState(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}
	if err := writeState(path, State{Env: "test"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := readState(path); len(got.Servers) != 0 {
		t.Errorf("after writing an empty state: %+v", got)
	}
	os.WriteFile(path, []byte("{not json"), 0o600)
	if _, err := readState(path); err == nil {
		t.Error("a corrupt state file: no error")
	}
}

func TestSecretIsCreatedOnceAndKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.secret")
	s1, err := loadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(s1) != 64 {
		t.Fatalf("secret %q: want 64 hex digits", s1)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("secret mode %v, want 0600", fi.Mode().Perm())
	}
	s2, err := loadOrCreateSecret(path)
	if err != nil || s2 != s1 {
		t.Fatalf("second load: %q, %v; want the same secret", s2, err)
	}
	os.WriteFile(path, []byte("short\n"), 0o600)
	if _, err := loadOrCreateSecret(path); err == nil {
		t.Error("a damaged secret file: no error")
	}
}

func TestSecretEnvMatchesApp(t *testing.T) {
	if SecretEnv != app.SecretEnv {
		t.Fatalf("master.SecretEnv %q != app.SecretEnv %q", SecretEnv, app.SecretEnv)
	}
}

func TestMatchCmdline(t *testing.T) {
	const bin = "/opt/chat/bin/chat"
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{bin, "--env", "prod", "--id", "chat-1", "--config", "/x"}, true},
		{[]string{bin, "--env=prod", "--id=chat-1"}, true},
		{[]string{bin, "-id", "chat-1"}, true},                     // no env on the line: fine
		{[]string{bin, "--env", "dev", "--id", "chat-1"}, false},   // another environment
		{[]string{bin, "--env", "prod", "--id", "chat-10"}, false}, // another server
		{[]string{"/other/bin", "--env", "prod", "--id", "chat-1"}, false},
		{[]string{bin, "--env", "prod", "chat-1"}, false},
		{[]string{bin, "--env", "prod", "--id"}, false},
	} {
		if got := matchCmdline(tc.args, bin, "prod", "chat-1"); got != tc.want {
			t.Errorf("matchCmdline(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestIsServerProcessSeesThisProcess(t *testing.T) {
	args, err := cmdline(os.Getpid())
	if err != nil {
		t.Skip("no /proc:", err)
	}
	if isServerProcess(os.Getpid(), args[0], "test", "nope") {
		t.Error("this test process has no --id nope, yet it matched")
	}
	if !alive(os.Getpid()) {
		t.Error("alive(self) = false")
	}
}

func TestEnvNameMustNameFiles(t *testing.T) {
	for _, name := range []string{"../x", "a/b", ".hidden", ""} {
		_, err := New(Config{Env: &config.Env{Name: name}, ConfigPath: "/x/servers.toml"})
		if err == nil {
			t.Errorf("env %q accepted", name)
		}
	}
	if _, err := New(Config{Env: &config.Env{Name: "prod-2.eu_west"}, ConfigPath: "/x/servers.toml"}); err != nil {
		t.Errorf("a plain env name: %v", err)
	}
}
