package rpc

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/shaddock/shaddock/internal/lograte"
)

// SecretHeader carries the cluster secret on every cluster and registry call.
const SecretHeader = "x-shaddock-secret"

// secretCreds attaches the cluster secret to every call.
type secretCreds string

func (s secretCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{SecretHeader: string(s)}, nil
}

// RequireTransportSecurity is false: cluster traffic stays on loopback or a
// private network in this version; mTLS is a later hardening step.
func (secretCreds) RequireTransportSecurity() bool { return false }

// WithSecret is the dial option that sends the cluster secret.
func WithSecret(secret string) grpc.DialOption {
	return grpc.WithPerRPCCredentials(secretCreds(secret))
}

// RequireSecret returns server options that refuse calls without the secret,
// so cluster ports accept only cluster members. For streams the check runs
// once, when the stream opens. Refusals are logged to log, at most one line
// per authLogEvery with the number of refusals it stands for, so a
// scanner cannot flood the log.
func RequireSecret(secret string, log *slog.Logger) []grpc.ServerOption {
	refused := &refusalLog{log: log, rate: lograte.Limiter{Every: authLogEvery}}
	check := func(ctx context.Context, method string) error {
		md, _ := metadata.FromIncomingContext(ctx)
		got := md.Get(SecretHeader)
		if len(got) != 1 || subtle.ConstantTimeCompare([]byte(got[0]), []byte(secret)) != 1 {
			refused.note(ctx, method, len(got) == 0)
			return status.Error(codes.Unauthenticated, "missing or wrong cluster secret")
		}
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := check(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := check(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}

// authLogEvery is the least time between two log lines about refused calls.
const authLogEvery = 10 * time.Second

// refusalLog rate-limits the log lines about refused cluster calls.
type refusalLog struct {
	log  *slog.Logger
	rate lograte.Limiter
}

func (r *refusalLog) note(ctx context.Context, method string, missing bool) {
	ok, earlier := r.rate.Allow()
	if !ok {
		return
	}
	from := "unknown"
	if p, ok := grpcpeer.FromContext(ctx); ok && p.Addr != nil {
		from = p.Addr.String()
	}
	why := "wrong secret"
	if missing {
		why = "no secret"
	}
	r.log.Warn("cluster call refused: authentication failed", "peer", from, "method", method, "why", why,
		"refused_since_last_line", earlier)
}
