package master

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/shaddock/shaddock/app"
	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/master/launch"
)

func TestStateFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.state.json")
	empty, err := readState(path)
	if err != nil || len(empty.Servers) != 0 {
		t.Fatalf("missing file: got %+v, %v; want an empty state", empty, err)
	}
	want := State{Env: "test", Servers: map[string]StateEntry{
		"chat-server-1": {Epoch: 7, Handle: launch.Handle{Driver: "ssh", Host: "10.0.0.12", ID: "chat-server-1", PID: 1234,
			Started: time.UnixMilli(1_700_000_000_123).UTC(), BootID: "b0", StartTicks: 4242, Binary: "/opt/chat/bin/chat", Log: "/opt/chat/logs/chat-server-1.log"}},
		"connector-server-1": {Epoch: 1, Handle: launch.Handle{Driver: "local", Host: "127.0.0.1", ID: "connector-server-1", PID: 99,
			Started: time.UnixMilli(1_700_000_001_000).UTC(), Binary: "/opt/chat/bin/chat"}},
	}, Epochs: map[string]uint64{"chat-server-1": 7, "connector-server-1": 1, "chat-server-2": 3}}
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

func TestEnvNamesMatchApp(t *testing.T) {
	if launch.SecretEnv != app.SecretEnv || launch.EpochEnv != app.EpochEnv || launch.BuildEnv != app.BuildEnv {
		t.Fatalf("launch %q %q %q != app %q %q %q", launch.SecretEnv, launch.EpochEnv, launch.BuildEnv, app.SecretEnv, app.EpochEnv, app.BuildEnv)
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

// The repository's servers.toml stays valid: the demo, and the production
// example with its SSH hosts.
func TestShippedServersToml(t *testing.T) {
	abs, err := filepath.Abs("../servers.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"development", "production"} {
		env, err := config.Load(abs, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m, err := New(Config{Env: env, ConfigPath: abs})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		remote := m.remoteHosts()
		switch name {
		case "development":
			if len(remote) != 0 {
				t.Errorf("the demo has remote hosts %v", remote)
			}
		case "production":
			if !slices.Equal(remote, []string{"10.0.0.11", "10.0.0.12"}) || !env.SSH.UploadBinary || env.SSH.User != "chat" {
				t.Errorf("production: remote hosts %v, ssh %+v", remote, env.SSH)
			}
			if base, bin := ServerPaths(env, abs); base != "/opt/chat" || bin != "/opt/chat/bin/chat" {
				t.Errorf("production paths %s %s", base, bin)
			}
		}
	}
}
