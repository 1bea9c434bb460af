// Command testgame is the smallest shaddock game, for the master's tests: a
// connector frontend with one route, and a chat backend with a request route
// and a remote that the connector calls when a session closes (so a stop
// that took backends down before frontends would show in the logs).
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/shaddock/shaddock/app"
	"github.com/shaddock/shaddock/handler"
)

// variant tells builds apart (go build -ldflags "-X main.variant=2"), for
// the rolling update's tests: another variant is another build.
var variant = "1"

type enterReq struct {
	UID string `json:"uid"`
}

type enterResp struct {
	Code   int    `json:"code"`
	Server string `json:"server"`
}

type echoReq struct {
	Msg string `json:"msg"`
}

type echoResp struct {
	Msg    string `json:"msg"`
	Server string `json:"server"`
}

type leaveReq struct {
	UID string `json:"uid"`
}

func main() {
	a := app.New()
	a.OnServe(func(ctx context.Context, info app.Info) error {
		a.Logger().Info("testgame variant", "variant", variant)
		return nil
	})
	a.Handle("connector.entryHandler.enter", handler.Typed(func(ctx context.Context, s handler.Session, req *enterReq) (*enterResp, error) {
		if err := s.Bind(ctx, req.UID); err != nil {
			return &enterResp{Code: 500}, nil
		}
		return &enterResp{Code: 200, Server: a.Info().ID}, nil
	}))
	a.Handle("chat.chatHandler.echo", handler.Typed(func(ctx context.Context, s handler.Session, req *echoReq) (*echoResp, error) {
		return &echoResp{Msg: req.Msg, Server: a.Info().ID}, nil
	}))
	a.Remote("chat.chatRemote.leave", handler.Remote(func(ctx context.Context, req *leaveReq) (*struct{}, error) {
		a.Logger().Info("session left", "uid", req.UID)
		return &struct{}{}, nil
	}))
	a.OnSessionClosed(func(ctx context.Context, s handler.Session) {
		if s.UID() == "" {
			return
		}
		if err := a.Call(ctx, "chat.chatRemote.leave", s.UID(), &leaveReq{UID: s.UID()}, nil); err != nil {
			a.Logger().Error("leave failed", "uid", s.UID(), "err", err)
		}
	})
	if err := a.Run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "testgame:", err)
		os.Exit(1)
	}
}
