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
// serves a browser page that chats through the cluster over WebSocket; over
// https and wss:// when the gate has tlsCert and tlsKey in servers.toml.
//
// With --protobuf (or CHAT_PROTOBUF=1 in the environment the master
// starts the servers with) bodies of the routes in protos/ travel as
// Pomelo protobuf, as chatofpomelo-websocket's useProtobuf: the handshake
// offers protos/serverProtos.json and protos/clientProtos.json (the fields
// numbered as chatofpomelo-websocket numbers onChat), and onAdd, onLeave and
// onChat go out protobuf-encoded. The handlers do not change.
package main

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"time"

	"github.com/shaddock/shaddock/app"
	"github.com/shaddock/shaddock/connector"
	"github.com/shaddock/shaddock/pomelopb"
)

//go:embed protos/serverProtos.json
var serverProtos []byte

//go:embed protos/clientProtos.json
var clientProtos []byte

func main() {
	a := app.New()
	web := a.Flags().String("web", "", "serve the chat page on this address (gate servers)")
	useProtobuf := a.Flags().Bool("protobuf", os.Getenv("CHAT_PROTOBUF") == "1",
		"protobuf bodies for the routes in protos/ (default: CHAT_PROTOBUF=1 in the environment)")
	register(a)
	protos, err := pomelopb.Parse(serverProtos, clientProtos)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
	a.ConfigureFrontend(func(typ string, cfg *connector.Config) {
		// Flags are parsed by Run, before frontends are configured.
		if *useProtobuf {
			cfg.Protos = protos
		}
		if typ == "gate" {
			// As chatofpomelo's gate: no heartbeat in the handshake (clients
			// ask for a connector and leave), but an idle client is closed.
			cfg.Heartbeat = -1
			cfg.HeartbeatTimeout = time.Minute
		}
	})

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
