package rpc

import (
	"context"
	"crypto/subtle"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
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
// once, when the stream opens.
func RequireSecret(secret string) []grpc.ServerOption {
	check := func(ctx context.Context) error {
		md, _ := metadata.FromIncomingContext(ctx)
		got := md.Get(SecretHeader)
		if len(got) != 1 || subtle.ConstantTimeCompare([]byte(got[0]), []byte(secret)) != 1 {
			return status.Error(codes.Unauthenticated, "missing or wrong cluster secret")
		}
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := check(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := check(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}
