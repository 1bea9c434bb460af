// Command hello is the smallest shaddock game with a server type of its own:
// clients connect to a connector, and "room" backends keep a counter per
// room. The README's "Write your own game" section walks through it.
//
//	room.roomHandler.join {room}        → {room, members}   (runs on a room server)
//	room.roomRemote.count {room}        → {room, members}   (server-to-server)
//	connector.helloHandler.count {room} → {room, members}   (runs on the connector, calls the remote)
//	connector.helloHandler.whoami       → {session, frontend}
package main

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/shaddock/shaddock/app"
	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/rpc"
)

type joinRequest struct {
	Room string `json:"room"`
}

type joinResponse struct {
	Room    string `json:"room"`
	Members int    `json:"members"`
}

// rooms is the state of one room server.
type rooms struct {
	mu      sync.Mutex
	members map[string]int
}

// join runs on the room server the session's room routes to.
func (r *rooms) join(ctx context.Context, s handler.Session, req *joinRequest) (*joinResponse, error) {
	if req.Room == "" {
		return nil, handler.Errorf(400, "room is required")
	}
	s.Set("room", req.Room) // travels back to the connector with the reply
	r.mu.Lock()
	r.members[req.Room]++
	n := r.members[req.Room]
	r.mu.Unlock()
	return &joinResponse{Room: req.Room, Members: n}, nil
}

// count is a remote: other servers call it with app.Call.
func (r *rooms) count(ctx context.Context, req *joinRequest) (*joinResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &joinResponse{Room: req.Room, Members: r.members[req.Room]}, nil
}

type whoami struct {
	Session  int64  `json:"session"`
	Frontend string `json:"frontend"`
}

func main() {
	a := app.New()
	r := &rooms{members: map[string]int{}}
	a.Handle("room.roomHandler.join", handler.Typed(r.join))
	a.Remote("room.roomRemote.count", handler.Remote(r.count))
	a.Handle("connector.helloHandler.whoami", handler.Typed(
		func(ctx context.Context, s handler.Session, _ *struct{}) (*whoami, error) {
			return &whoami{Session: s.ID(), Frontend: s.FrontendID()}, nil
		}))
	// A connector handler calling the remote on the room's server.
	a.Handle("connector.helloHandler.count", handler.Typed(
		func(ctx context.Context, s handler.Session, req *joinRequest) (*joinResponse, error) {
			var resp joinResponse
			err := a.Call(ctx, "room.roomRemote.count", req.Room, req, &resp)
			return &resp, err
		}))
	// Messages for "room" go to the server that crc32(room setting) picks,
	// or by uid/session before the session has one.
	a.Route("room", func(s handler.Session, servers []rpc.Member) (rpc.Member, error) {
		room, ok := s.Get("room")
		if !ok {
			return rpc.DefaultRoute(s, servers)
		}
		return rpc.Pick(room, servers)
	})
	if err := a.Run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}
