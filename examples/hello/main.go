// Command hello is the smallest shaddock game with a server type of its own:
// clients connect to a connector, pick a room there, and "room" backends
// keep a member count per room. The README's "Write your own game" section
// walks through it.
//
//	connector.helloHandler.enter {room} → {room}               (on the connector: sets the session's room)
//	room.roomHandler.join               → {room, members}      (on the room's server)
//	room.roomRemote.count {room}        → {room, members}      (server-to-server)
//	connector.helloHandler.count {room} → {room, members}      (on the connector, calls the remote)
//	connector.helloHandler.whoami       → {session, frontend, settings}
package main

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/shaddock/shaddock/app"
	"github.com/shaddock/shaddock/connector"
	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/rpc"
)

type roomRequest struct {
	Room string `json:"room"`
}

type roomResponse struct {
	Room    string `json:"room"`
	Members int    `json:"members,omitempty"`
}

// rooms is the state of one room server.
type rooms struct {
	mu      sync.Mutex
	members map[string]int
}

// join runs on the server the session's room routes to.
func (r *rooms) join(ctx context.Context, s handler.Session, _ *struct{}) (*roomResponse, error) {
	room, _ := s.Get("room")
	r.mu.Lock()
	r.members[room]++
	n := r.members[room]
	r.mu.Unlock()
	s.Set("joined", room) // a backend's change travels back to the connector with the reply
	return &roomResponse{Room: room, Members: n}, nil
}

// count is a remote: other servers call it with app.Call.
func (r *rooms) count(ctx context.Context, req *roomRequest) (*roomResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &roomResponse{Room: req.Room, Members: r.members[req.Room]}, nil
}

type whoami struct {
	Session  int64             `json:"session"`
	Frontend string            `json:"frontend"`
	Settings map[string]string `json:"settings"`
}

func main() {
	a := app.New()
	r := &rooms{members: map[string]int{}}

	// Connector routes run on the connector itself.
	a.Handle("connector.helloHandler.enter", handler.Typed(
		func(ctx context.Context, s handler.Session, req *roomRequest) (*roomResponse, error) {
			if req.Room == "" {
				return nil, handler.Errorf(400, "room is required")
			}
			s.Set("room", req.Room)
			return &roomResponse{Room: req.Room}, nil
		}))
	a.Handle("connector.helloHandler.count", handler.Typed(
		func(ctx context.Context, s handler.Session, req *roomRequest) (*roomResponse, error) {
			var resp roomResponse
			err := a.Call(ctx, "room.roomRemote.count", req.Room, req, &resp) // on the room's server
			return &resp, err
		}))
	a.Handle("connector.helloHandler.whoami", handler.Typed(
		func(ctx context.Context, s handler.Session, _ *struct{}) (*whoami, error) {
			return &whoami{Session: s.ID(), Frontend: s.FrontendID(), Settings: s.(*connector.Session).Settings()}, nil
		}))

	// The room server type: a client route and a remote.
	a.Handle("room.roomHandler.join", handler.Typed(r.join))
	a.Remote("room.roomRemote.count", handler.Remote(r.count))
	// A session's room messages go to room[abs(crc32(room)) % n], the same
	// server the remote call above picks with the room as its key.
	a.Route("room", func(req handler.Request, servers []rpc.Member) (rpc.Member, error) {
		room, ok := req.Session.Get("room")
		if !ok {
			return rpc.Member{}, handler.Errorf(400, "enter a room first")
		}
		return rpc.Pick(room, servers)
	})

	if err := a.Run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}
