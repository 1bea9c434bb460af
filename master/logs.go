package master

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/master/launch"
)

// Logs writes the last n lines of server id's log to w (all of it if n <=
// 0), and with follow what the server writes next, until ctx ends. It
// reads the file on the server's host, over SSH when that is another
// machine, and needs no running master: a server that failed to start can
// be read after its master is gone.
func Logs(ctx context.Context, env *config.Env, configPath, id string, n int, follow bool, w io.Writer) error {
	abs, err := filepath.Abs(configPath)
	if err != nil {
		return err
	}
	s, ok := env.Server(id)
	if !ok {
		return fmt.Errorf("logs: no server %s in env %s of %s", id, env.Name, configPath)
	}
	base, _ := ServerPaths(env, abs)
	var l launch.Launcher
	path := DefaultPaths(abs).ServerLog(id)
	if isLocalHost(s.Host) {
		l = launch.NewLocal(slog.New(slog.DiscardHandler))
	} else {
		path = filepath.Join(base, "logs", id+".log")
		ssh, err := newSSH(env.SSH, slog.New(slog.DiscardHandler))
		if err != nil {
			return fmt.Errorf("logs %s on %s: %w", id, s.Host, err)
		}
		l = ssh
	}
	defer l.Close()
	if err := l.Logs(ctx, s.Host, path, n, follow, w); err != nil {
		return fmt.Errorf("logs %s on %s: %w", id, s.Host, err)
	}
	return nil
}
