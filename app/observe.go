package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/metrics"
	"github.com/shaddock/shaddock/proto/clusterpb"
)

// newLogger is the server's logger: in the format the flag names, else the
// one servers.toml's logFormat names, else text.
func newLogger(w io.Writer, flagFormat, envFormat string, level slog.Level) (*slog.Logger, error) {
	format := flagFormat
	if format == "" {
		format = envFormat
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "", config.LogText:
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case config.LogJSON:
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want %q or %q", format, config.LogText, config.LogJSON)
	}
}

// measured counts the messages frontends forward to this backend (and the
// remotes called on it), by route and code, and times its handlers (not
// the client's round trip: the frontend that received the request counts
// that).
func measured[Req interface{ GetRoute() string }, Rep interface{ GetError() *clusterpb.Error }](
	m *metrics.Server, fn func(context.Context, Req) Rep) func(context.Context, Req) Rep {
	if m == nil {
		return fn
	}
	return func(ctx context.Context, req Req) Rep {
		start := time.Now()
		rep := fn(ctx, req)
		m.Handled(req.GetRoute(), replyCode(rep.GetError()), time.Since(start))
		return rep
	}
}

func replyCode(e *clusterpb.Error) int {
	if e == nil {
		return 200
	}
	return int(e.GetCode())
}
