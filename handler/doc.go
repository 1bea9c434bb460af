// Package handler is how game code meets client messages and server-to-server
// calls: a Mux maps routes ("serverType.handler.method") to handlers, typed
// adapters turn plain Go functions with request/response structs into
// handlers, filters wrap them, and Session is the view of the client's
// session a handler gets, whether it runs on the frontend that holds the
// connection or on a backend that received the request forwarded.
//
// The package knows nothing of transports: connectors and backends feed it
// bytes and a Session and write back what it returns.
package handler
