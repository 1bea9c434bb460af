// Command pomeloc is an interactive Pomelo client for people debugging a
// shaddock (or Pomelo) server: it connects over TCP or WebSocket, sends the
// requests and notifies typed on stdin, and prints responses with their
// round-trip time and pushes as they arrive.
//
//	pomeloc [-ws] [-user JSON] [-wait DURATION] HOST:PORT|ws://HOST:PORT/
//
// It works piped too: it exits at the end of input once every response has
// arrived (and -wait has passed), with status 1 if a command failed or the
// server kicked or dropped it:
//
//	printf 'request gate.gateHandler.queryEntry {"uid":"u1"}\n' | pomeloc 127.0.0.1:3014
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/shaddock/shaddock/tools/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := pomeloc(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// pomeloc is the whole command, minus the process: it returns the exit status.
func pomeloc(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pomeloc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	useWS := fs.Bool("ws", false, "connect with WebSocket (implied by a ws:// address)")
	user := fs.String("user", "", "JSON `object` sent as the user part of the handshake")
	wait := fs.Duration("wait", 0, "keep printing pushes for this `duration` after the input ends")
	timeout := fs.Duration("timeout", 10*time.Second, "bound on connecting and on each request")
	verbose := fs.Bool("v", false, "log protocol details to stderr")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: pomeloc [flags] HOST:PORT|ws://HOST:PORT/\n\n%s\nflags:\n", helpText)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	addr := fs.Arg(0)

	con := newConsole(stdout)
	opts := client.Options{OnPush: con.push}
	if *useWS {
		opts.Transport = client.TransportWS
	}
	if *user != "" {
		if !json.Valid([]byte(*user)) {
			fmt.Fprintf(stderr, "pomeloc: -user is not valid JSON: %s\n", *user)
			return 2
		}
		opts.HandshakeUser = json.RawMessage(*user)
	}
	if *verbose {
		opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}

	dctx, cancel := context.WithTimeout(ctx, *timeout)
	c, err := client.Dial(dctx, addr, opts)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "pomeloc: %v\n", err)
		return 1
	}
	hs := c.Handshake()
	con.printf("connected to %s (heartbeat %ds, %d routes in the dictionary)\n", addr, hs.Sys.Heartbeat, hs.Sys.Dict.Len())
	if err := con.run(ctx, c, stdin, runOptions{wait: *wait, timeout: *timeout}); err != nil {
		fmt.Fprintf(stderr, "pomeloc: %v\n", err)
		return 1
	}
	return 0
}
