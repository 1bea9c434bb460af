// Package app is the runtime of a shaddock game binary. A game registers its
// handlers, remotes, route functions and hooks on an App and calls Run; the
// master starts the same binary once per server with the server's id, and
// Run reads servers.toml, takes the role that server has (frontend or
// backend, of its type), registers with the master, serves, and stops
// gracefully on SIGTERM or when the master asks.
//
//	a := app.New()
//	a.Handle("chat.chatHandler.send", handler.Typed(chat.Send))
//	a.Remote("chat.chatRemote.add", handler.Remote(chat.Add))
//	a.Route("chat", rpc.RouteBySetting("rid"))
//	log.Fatal(a.Run(context.Background(), os.Args[1:]))
//
// App wires the other packages together and holds no logic of its own
// beyond the frontend's local-or-forward decision.
package app
