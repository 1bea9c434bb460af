package main

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/shaddock/shaddock/app"
	"github.com/shaddock/shaddock/backend"
	"github.com/shaddock/shaddock/gate"
	"github.com/shaddock/shaddock/handler"
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
	// send only queues pushes: it never waits, so the chat server runs it
	// on the goroutine that received it (handler.Mux.HandleNonBlocking).
	a.HandleNonBlocking("chat.chatHandler.send", handler.Typed(c.send))
	// The remotes are called for the entering or leaving session (CallFor):
	// they get it, and the room records where it is.
	a.Remote("chat.chatRemote.add", handler.Typed(c.add))
	a.Remote("chat.chatRemote.kick", handler.Typed(c.kick))
	a.OnSessionClosed(c.leave)

	// Chat servers hold rooms, keyed by the session's rid. A room nobody
	// holds goes to chat[abs(crc32(rid)) % n], as in chatofpomelo; a room
	// stays where it is while it has members (servers added meanwhile do
	// not move it); if its server dies, its users are kicked with a reason
	// and placed again when they re-enter.
	a.Stateful("chat", "rid")
	a.Dictionary("onChat", "onAdd", "onLeave")
	// Members whose connector died (or whose session vanished) are dropped
	// by the framework: tell the room they left.
	a.OnServe(func(ctx context.Context, info app.Info) error {
		if info.Type == "chat" {
			a.Channels().OnDrop(c.dropped)
		}
		return nil
	})
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
	Rid    string `json:"rid"`
	Create bool   `json:"create,omitempty"`
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
	if err := c.a.CallFor(ctx, s, "chat.chatRemote.add", memberRequest{Rid: req.Rid, Create: true}, &users); err != nil {
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
	err := c.a.CallFor(ctx, s, "chat.chatRemote.kick", memberRequest{Rid: rid}, nil)
	if err != nil {
		// Its chat server is gone: the room went with it.
		c.a.Logger().Info("leaving the room failed", "uid", uid, "rid", rid, "err", err)
	}
}

type userPush struct {
	Route string `json:"route"`
	User  string `json:"user"`
}

// add runs on the room's chat server for the entering session: announce,
// then join; answer the room's usernames.
func (c *chat) add(ctx context.Context, s handler.Session, req *memberRequest) (*[]string, error) {
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
	if err := ch.Push(ctx, "onAdd", userPush{Route: "onAdd", User: name(s.UID())}); err != nil {
		c.a.Logger().Debug("onAdd not delivered to every member", "rid", req.Rid, "err", err)
	}
	ch.Add(backend.TargetOf(s))
	for _, uid := range ch.Members() {
		users = append(users, name(uid))
	}
	return &users, nil
}

// kick runs on the room's chat server for the leaving session: leave, then
// announce.
func (c *chat) kick(ctx context.Context, s handler.Session, req *memberRequest) (*struct{}, error) {
	if ch := c.a.Channels().Get(req.Rid); ch != nil {
		mu := c.room(req.Rid)
		mu.Lock()
		defer mu.Unlock()
		if ch.Remove(backend.TargetOf(s)) {
			c.announceLeave(ctx, ch, s.UID())
		}
	}
	return &struct{}{}, nil
}

// dropped runs on a chat server when the framework dropped members whose
// sessions are gone without leaving (their connector died).
func (c *chat) dropped(ctx context.Context, ch *backend.Channel, gone []backend.Target) {
	mu := c.room(ch.Name())
	mu.Lock()
	defer mu.Unlock()
	for _, t := range gone {
		c.announceLeave(ctx, ch, t.UID)
	}
}

func (c *chat) announceLeave(ctx context.Context, ch *backend.Channel, uid string) {
	if err := ch.Push(ctx, "onLeave", userPush{Route: "onLeave", User: name(uid)}); err != nil {
		c.a.Logger().Debug("onLeave not delivered to every member", "rid", ch.Name(), "err", err)
	}
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
			// The framework kicks the members it could not reach.
			c.a.Logger().Debug("onChat not delivered to every member", "rid", rid, "err", err)
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
