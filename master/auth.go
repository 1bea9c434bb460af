package master

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/shaddock/shaddock/internal/lograte"
	"github.com/shaddock/shaddock/rpc"
)

// Method prefixes of the two services on the control port.
const (
	registryPrefix = "/shaddock.master.v1.Registry/"
	adminPrefix    = "/shaddock.master.v1.Admin/"
)

// authorizer checks every call on the control port: registry calls carry
// the cluster secret, admin calls the admin token. Anything else is
// refused, and logged (at most once per authLogEvery, with a count of what
// was not logged, so a flood cannot flood the log).
type authorizer struct {
	secret, token string
	log           *slog.Logger
	rate          lograte.Limiter // Every is authLogEvery
}

const authLogEvery = 10 * time.Second

func newAuthorizer(secret, token string, log *slog.Logger) *authorizer {
	return &authorizer{secret: secret, token: token, log: log, rate: lograte.Limiter{Every: authLogEvery}}
}

// refused logs a refused call, rate-limited, and returns err.
func (a *authorizer) refused(ctx context.Context, method string, err error) error {
	if a.log == nil {
		return err
	}
	ok, n := a.rate.Allow()
	if !ok {
		return err
	}
	from := "unknown"
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		from = p.Addr.String()
	}
	a.log.Warn("control port call refused", "method", method, "from", from, "err", status.Convert(err).Message(), "more_refused_since_last_line", n)
	return err
}

func (a *authorizer) check(ctx context.Context, method string) error {
	if err := a.verify(ctx, method); err != nil {
		return a.refused(ctx, method, err)
	}
	return nil
}

func (a *authorizer) verify(ctx context.Context, method string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	switch {
	case strings.HasPrefix(method, registryPrefix):
		if !oneEqual(md.Get(rpc.SecretHeader), a.secret) {
			return status.Error(codes.Unauthenticated, "missing or wrong cluster secret")
		}
	case strings.HasPrefix(method, adminPrefix):
		var got []string
		for _, v := range md.Get("authorization") {
			if t, ok := strings.CutPrefix(v, "Bearer "); ok {
				got = append(got, t)
			}
		}
		if !oneEqual(got, a.token) {
			return status.Error(codes.Unauthenticated, "missing or wrong admin token (authorization: Bearer TOKEN)")
		}
	default:
		return status.Errorf(codes.Unauthenticated, "unknown method %s", method)
	}
	return nil
}

// oneEqual reports whether vals is exactly one value equal to want, in
// constant time.
func oneEqual(vals []string, want string) bool {
	return len(vals) == 1 && want != "" && subtle.ConstantTimeCompare([]byte(vals[0]), []byte(want)) == 1
}

func (a *authorizer) serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := a.check(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := a.check(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}

// tokenCreds sends the admin token on every call.
type tokenCreds string

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

// RequireTransportSecurity is false: the admin API listens where the config
// says, normally loopback or a private network, as the registry does.
func (tokenCreds) RequireTransportSecurity() bool { return false }
