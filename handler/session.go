package handler

import "context"

// Session is what a handler sees of the client's session.
//
// On the frontend holding the connection it is the live session. On a
// backend it is a snapshot taken when the request was forwarded: Set changes
// travel back to the frontend with the reply; Bind, Push and Kick are calls to
// the frontend and take effect before they return.
type Session interface {
	// ID is unique among the sessions of its frontend.
	ID() int64
	// FrontendID is the id of the server holding the connection.
	FrontendID() string
	// UID is the user id bound to the session, "" until Bind.
	UID() string
	// Bind associates uid with the session, once. It fails with ErrUIDBound if
	// the uid is bound to another session and the policy rejects duplicates,
	// and with ErrAlreadyBound if this session is bound to another uid.
	Bind(ctx context.Context, uid string) error
	// Get returns a session setting.
	Get(key string) (string, bool)
	// Set changes a session setting. Routing functions and later handlers,
	// on any server, see it.
	Set(key, value string)
	// Push sends a message to this session's client. v is encoded as JSON
	// unless it is a []byte, which is sent as is.
	Push(ctx context.Context, route string, v any) error
	// Kick sends the client a kick with the reason and closes the session.
	Kick(ctx context.Context, reason string) error
}
