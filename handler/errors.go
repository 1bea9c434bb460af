package handler

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Error is an error a client can read: the response body becomes
// {"code": Code, "msg": Msg}, the shape Pomelo clients check. Err, if set,
// is the cause for logs and Go callers: it never reaches a client, so Msg
// stays free of internals (server ids, addresses, transport errors).
type Error struct {
	Code int    `json:"code"`
	Msg  string `json:"msg,omitempty"`
	Err  error  `json:"-"`
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("code %d: %s: %v", e.Code, e.Msg, e.Err)
	}
	return fmt.Sprintf("code %d: %s", e.Code, e.Msg)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with a formatted message.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Response codes the framework itself uses.
const (
	CodeOK              = 200
	CodeBadRequest      = 400 // the body did not decode into the handler's request type
	CodeNotFound        = 404 // no handler for the route
	CodeTooManyRequests = 429 // the session exceeded its request rate
	CodeInternal        = 500 // the handler failed without saying how
	CodeUnavailable     = 503 // no server can take the route right now
	CodeTimeout         = 504 // the server handling the route did not answer in time
)

// Errors sessions return; branch with errors.Is.
var (
	ErrUIDBound     = errors.New("uid already bound to another session")
	ErrAlreadyBound = errors.New("session already bound to another uid")
	ErrSessionGone  = errors.New("session closed")
)

// ErrorBody encodes err as the body a client gets. Errors that are not
// *Error become a generic 500 so that internals do not leak to clients; the
// caller logs the original.
func ErrorBody(err error) []byte {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Code: CodeInternal, Msg: "internal server error"}
	}
	b, _ := json.Marshal(e) // two plain fields (Err is not encoded) cannot fail
	return b
}
