package main

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/shaddock/shaddock/app"
	"github.com/shaddock/shaddock/gate"
	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/rpc"
)

// register wires the chatofpomelo routes, remotes and hooks into a.
func register(a *app.App) {
	c := &chat{a: a}

	// The gate's dispatcher needs the server's group, known once running.
	queryEntry := sync.OnceValue(func() handler.Func {
		return gate.QueryEntry(gate.Config{Membership: a.Membership(), Group: a.Info().Group})
	})
	a.Handle(gate.Route, func(ctx context.Context, r handler.Request) ([]byte, error) {
		return queryEntry()(ctx, r)
	})
	a.Handle("connector.entryHandler.enter", handler.Typed(c.enter))
	a.Handle("chat.chatHandler.send", handler.Typed(c.send))
	a.Remote("chat.chatRemote.add", handler.Remote(c.add))
	a.Remote("chat.chatRemote.kick", handler.Remote(c.kick))
	a.OnSessionClosed(c.leave)

	// A session's chat server is chat[abs(crc32(rid)) % n], as in chatofpomelo.
	a.Route("chat", rpc.RouteBySetting("rid"))
	a.Dictionary("onChat", "onAdd", "onLeave")
}

type chat struct {
	a     *app.App
	rooms sync.Map // rid → *sync.Mutex
}

// room serialises membership changes of one room. Handlers run in parallel
// (unlike Pomelo's single thread), so "announce, then join" must not
// interleave with another join or leave, or two users entering at once would
// each miss the other's onAdd.
func (c *chat) room(rid string) *sync.Mutex {
	m, _ := c.rooms.LoadOrStore(rid, new(sync.Mutex))
	return m.(*sync.Mutex)
}

type enterRequest struct {
	Username string `json:"username"`
	Rid      string `json:"rid"`
}

type enterResponse struct {
	Code  int      `json:"code,omitempty"`
	Error bool     `json:"error,omitempty"`
	Users []string `json:"users,omitempty"`
}

type memberRequest struct {
	UID      string `json:"uid"`
	ServerID string `json:"sid"` // frontend holding the user's session
	Rid      string `json:"rid"`
	Create   bool   `json:"create,omitempty"`
}

// enter runs on the connector: bind username*rid, remember the room, join it.
func (c *chat) enter(ctx context.Context, s handler.Session, req *enterRequest) (*enterResponse, error) {
	uid := req.Username + "*" + req.Rid
	if err := s.Bind(ctx, uid); err != nil {
		if errors.Is(err, handler.ErrUIDBound) || errors.Is(err, handler.ErrAlreadyBound) {
			return &enterResponse{Code: 500, Error: true}, nil
		}
		return nil, err
	}
	s.Set("rid", req.Rid)
	var users []string
	err := c.a.Call(ctx, "chat.chatRemote.add", req.Rid,
		memberRequest{UID: uid, ServerID: s.FrontendID(), Rid: req.Rid, Create: true}, &users)
	if err != nil {
		return nil, err
	}
	return &enterResponse{Users: users}, nil
}

// leave runs on the connector when a session ends: leave the room.
func (c *chat) leave(ctx context.Context, s handler.Session) {
	uid := s.UID()
	rid, ok := s.Get("rid")
	if uid == "" || !ok {
		return
	}
	err := c.a.Call(ctx, "chat.chatRemote.kick", rid, memberRequest{UID: uid, ServerID: s.FrontendID(), Rid: rid}, nil)
	if err != nil {
		c.a.Logger().Warn("leaving the room failed", "uid", uid, "rid", rid, "err", err)
	}
}

type userPush struct {
	Route string `json:"route"`
	User  string `json:"user"`
}

// add runs on the room's chat server: announce, then join; answer the room's usernames.
func (c *chat) add(ctx context.Context, req *memberRequest) (*[]string, error) {
	ch := c.a.Channels().Get(req.Rid)
	if ch == nil && req.Create {
		ch = c.a.Channels().GetOrCreate(req.Rid)
	}
	users := []string{}
	if ch == nil {
		return &users, nil
	}
	mu := c.room(req.Rid)
	mu.Lock()
	defer mu.Unlock()
	if err := ch.Push(ctx, "onAdd", userPush{Route: "onAdd", User: name(req.UID)}); err != nil {
		c.a.Logger().Info("onAdd not delivered to every member", "rid", req.Rid, "err", err)
	}
	ch.Add(req.UID, req.ServerID)
	for _, uid := range ch.Members() {
		users = append(users, name(uid))
	}
	return &users, nil
}

// kick runs on the room's chat server: leave, then announce.
func (c *chat) kick(ctx context.Context, req *memberRequest) (*struct{}, error) {
	if ch := c.a.Channels().Get(req.Rid); ch != nil {
		mu := c.room(req.Rid)
		mu.Lock()
		defer mu.Unlock()
		ch.Leave(req.UID)
		if err := ch.Push(ctx, "onLeave", userPush{Route: "onLeave", User: name(req.UID)}); err != nil {
			c.a.Logger().Info("onLeave not delivered to every member", "rid", req.Rid, "err", err)
		}
	}
	return &struct{}{}, nil
}

type sendRequest struct {
	Rid     string `json:"rid"`
	Content string `json:"content"`
	From    string `json:"from"`
	Target  string `json:"target"`
}

type chatPush struct {
	Msg    string `json:"msg"`
	From   string `json:"from"`
	Target string `json:"target"`
}

type sendResponse struct {
	Route string `json:"route"`
}

// send runs on the room's chat server: to the whole room ("*") or one user.
// As in chatofpomelo the room is the session's, not the message's rid.
func (c *chat) send(ctx context.Context, s handler.Session, req *sendRequest) (*sendResponse, error) {
	rid, _ := s.Get("rid")
	body := chatPush{Msg: req.Content, From: name(s.UID()), Target: req.Target}
	if ch := c.a.Channels().Get(rid); ch != nil {
		var err error
		if req.Target == "*" {
			err = ch.Push(ctx, "onChat", body)
		} else {
			err = ch.PushTo(ctx, "onChat", body, req.Target+"*"+rid)
		}
		if err != nil {
			c.a.Logger().Info("onChat not delivered to every member", "rid", rid, "err", err)
		}
	}
	return &sendResponse{Route: "chat.chatHandler.send"}, nil
}

// name is the username part of a chat uid (username*rid).
func name(uid string) string {
	if i := strings.LastIndexByte(uid, '*'); i >= 0 {
		return uid[:i]
	}
	return uid
}
