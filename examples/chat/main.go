// Command chat is the chatofpomelo demo on shaddock: one game binary that the
// master starts as every server of servers.toml (gate, connectors, chat
// servers). Its routes, pushes and replies are exactly chatofpomelo's, so
// Pomelo chat clients and tools work against it unchanged:
//
//	gate.gateHandler.queryEntry  {uid}                       → {code:200, host, port} | {code:500}
//	connector.entryHandler.enter {username, rid}             → {users:[...]} | {code:500, error:true}
//	chat.chatHandler.send        {rid, content, from, target} → {route:"chat.chatHandler.send"}
//	pushes: onAdd {route, user}, onLeave {route, user}, onChat {msg, from, target}
//
// With --web=HOST:PORT (servers.toml passes it to the gate) the gate also
// serves a browser page that chats through the cluster over WebSocket.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/shaddock/shaddock/app"
)

func main() {
	a := app.New()
	web := a.Flags().String("web", "", "serve the chat page on this address (gate servers)")
	register(a)
	a.OnServe(func(ctx context.Context, info app.Info) error {
		if *web == "" || info.Type != "gate" {
			return nil
		}
		return serveWeb(ctx, *web, a)
	})
	if err := a.Run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}
