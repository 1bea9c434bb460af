package handler

import (
	"context"
	"reflect"

	"github.com/shaddock/shaddock/internal/flatjson"
)

// Typed adapts a function with typed request and response structs into a
// handler. The body is decoded as JSON into a new Req (a decode failure
// answers 400) and the response is encoded as JSON. Structs of strings,
// integers and booleans decode and encode faster than other types
// (internal/flatjson), with encoding/json's result.
func Typed[Req, Resp any](fn func(ctx context.Context, s Session, req *Req) (*Resp, error)) Func {
	dec, enc := flatjson.For[Req](), flatjson.NewEncoder(reflect.TypeFor[Resp]())
	return func(ctx context.Context, r Request) ([]byte, error) {
		req := new(Req)
		if err := decode(dec, r.Body, req); err != nil {
			return nil, err
		}
		resp, err := fn(ctx, r.Session, req)
		if err != nil {
			return nil, err
		}
		return enc.Marshal(resp)
	}
}

// TypedNotify adapts a function taking a typed notify body into a handler.
func TypedNotify[Req any](fn func(ctx context.Context, s Session, req *Req) error) Func {
	dec := flatjson.For[Req]()
	return func(ctx context.Context, r Request) ([]byte, error) {
		req := new(Req)
		if err := decode(dec, r.Body, req); err != nil {
			return nil, err
		}
		return nil, fn(ctx, r.Session, req)
	}
}

func decode[T any](dec *flatjson.Decoder[T], body []byte, v *T) error {
	if len(body) == 0 {
		return nil // Pomelo clients may send no body; the handler gets the zero request
	}
	if err := dec.Unmarshal(body, v); err != nil {
		return Errorf(CodeBadRequest, "bad request body: %v", err)
	}
	return nil
}
