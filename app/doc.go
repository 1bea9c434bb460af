// Package app is the runtime of a shaddock game binary. A game registers its
// handlers, remotes, route functions and hooks on an App and calls Run; the
// master starts the same binary once per server with the server's id, and
// Run reads servers.toml, takes the role that server has (frontend or
// backend, of its type), registers with the master, serves, and stops
// gracefully on SIGTERM or when the master asks.
//
//	a := app.New()
//	a.Handle("chat.chatHandler.send", handler.Typed(chat.Send))
//	a.Remote("chat.chatRemote.add", handler.Typed(chat.Add)) // called with a.CallFor(ctx, session, ...)
//	a.Stateful("chat", "rid")                                // chat servers hold rooms, keyed by the session's rid
//	log.Fatal(a.Run(context.Background(), os.Args[1:]))
//
// App wires the other packages together; its own logic is the frontend's:
// whether a message runs locally or on which backend (route functions, or
// the placement of a stateful type's keys and the sessions pinned to them,
// kicked when the server holding their state ends).
package app
