package handler

import (
	"context"
	"reflect"

	"github.com/shaddock/shaddock/internal/flatjson"
)

// Remote adapts a typed server-to-server function into a Func for a remote
// Mux (routes serverType.remote.method). Remotes have no client session:
// r.Session is nil. Bodies are JSON.
func Remote[Req, Resp any](fn func(ctx context.Context, req *Req) (*Resp, error)) Func {
	dec, enc := flatjson.For[Req](), flatjson.NewEncoder(reflect.TypeFor[Resp]())
	return func(ctx context.Context, r Request) ([]byte, error) {
		req := new(Req)
		if err := decode(dec, r.Body, req); err != nil {
			return nil, err
		}
		resp, err := fn(ctx, req)
		if err != nil {
			return nil, err
		}
		return enc.Marshal(resp)
	}
}
