package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shaddock/shaddock/tools/client"
)

const helpText = `commands:
  request ROUTE [JSON]   send a request (alias req; JSON defaults to {}), print the response and round trip
  notify ROUTE [JSON]    send a notify
  watch [ROUTE]          print only pushes of the watched routes (no ROUTE: list them)
  unwatch [ROUTE]        stop watching ROUTE (no ROUTE: print every push again)
  dict                   print the server's route dictionary
  help                   this text
  quit                   wait for pending responses and exit
pushes are printed as they arrive: push ROUTE JSON
`

// console runs pomeloc's command loop and owns its output: every line is
// printed whole under mu, whether it comes from a command, a response
// goroutine or the client's reader (pushes).
type console struct {
	out io.Writer

	mu     sync.Mutex
	watch  map[string]bool
	closed bool // run returned: print nothing more

	failed atomic.Int64 // commands and requests that failed
}

func newConsole(out io.Writer) *console {
	return &console{out: out, watch: make(map[string]bool)}
}

// runOptions are the knobs of the command loop.
type runOptions struct {
	wait    time.Duration // keep printing pushes this long after input ends
	timeout time.Duration // bound on each request; 0 for none
}

func (k *console) printf(format string, args ...any) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.closed {
		fmt.Fprintf(k.out, format, args...)
	}
}

func (k *console) errorf(format string, args ...any) {
	k.failed.Add(1)
	k.printf("error: "+format+"\n", args...)
}

// push is the client's OnPush: print unless filtered out.
func (k *console) push(route string, body []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed || (len(k.watch) > 0 && !k.watch[route]) {
		return
	}
	fmt.Fprintf(k.out, "push %s %s\n", route, compactJSON(body))
}

// run executes commands from in until it ends (or quit), waits for pending
// responses, then keeps printing pushes for opts.wait. It returns an error
// when the connection ended (kick, disconnect) or when a command or request
// failed, so scripts can rely on the exit status.
func (k *console) run(ctx context.Context, c *client.Client, in io.Reader, opts runOptions) error {
	defer func() {
		k.mu.Lock()
		k.closed = true
		k.mu.Unlock()
	}()
	lines := make(chan string)
	stop := make(chan struct{})
	defer close(stop)
	var inputErr error
	go func() {
		// Reading stdin cannot be interrupted; this goroutine is abandoned
		// if the connection ends first.
		defer close(lines)
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-stop:
				return
			}
		}
		inputErr = sc.Err() // read after lines is closed
	}()

	var pending sync.WaitGroup
	defer pending.Wait()
	interrupted, quit := false, false
loop:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				if inputErr != nil {
					k.errorf("reading commands: %v", inputErr)
				}
				break loop
			}
			if quit = k.exec(ctx, c, line, &pending, opts); quit {
				break loop
			}
		case <-c.Done():
			return ended(c.Err())
		case <-ctx.Done():
			interrupted = true
			break loop
		}
	}

	if !interrupted {
		if err := waitGroup(ctx, &pending, c); err != nil {
			return err
		}
		if opts.wait > 0 && !quit {
			t := time.NewTimer(opts.wait)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
			case <-c.Done():
				return ended(c.Err())
			}
		}
	}
	if err := c.Err(); err != nil {
		return ended(err)
	}
	_ = c.Close()
	if n := k.failed.Load(); n > 0 {
		return fmt.Errorf("%d command(s) failed", n)
	}
	return nil
}

// waitGroup waits for pending requests; they end at the latest with their
// timeout or the connection.
func waitGroup(ctx context.Context, wg *sync.WaitGroup, c *client.Client) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		_ = c.Close() // fails the pending requests
		<-done
		return nil
	}
}

// ended describes why the connection ended.
func ended(err error) error {
	var ke *client.KickedError
	if errors.As(err, &ke) {
		return fmt.Errorf("kicked by the server: %s", ke.Reason)
	}
	return fmt.Errorf("disconnected: %w", err)
}

// exec runs one command line; it reports whether the user asked to quit.
func (k *console) exec(ctx context.Context, c *client.Client, line string, pending *sync.WaitGroup, opts runOptions) bool {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return false
	}
	cmd, rest, _ := strings.Cut(line, " ")
	rest = strings.TrimSpace(rest)
	switch cmd {
	case "request", "req":
		route, body, ok := k.routeAndBody(cmd, rest)
		if !ok {
			return false
		}
		// Send now, in input order (the server runs a session's requests in
		// arrival order: enter before send); wait for the answer aside.
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if opts.timeout > 0 {
			rctx, cancel = context.WithTimeout(ctx, opts.timeout)
		}
		start := time.Now()
		p, err := c.Go(rctx, route, body)
		if err != nil {
			cancel()
			k.errorf("%v", err)
			return false
		}
		pending.Add(1)
		go func() {
			defer pending.Done()
			defer cancel()
			k.awaitResponse(rctx, p, route, start)
		}()
	case "notify":
		route, body, ok := k.routeAndBody(cmd, rest)
		if !ok {
			return false
		}
		if err := c.Notify(ctx, route, body); err != nil {
			k.errorf("%v", err)
		}
	case "watch":
		k.mu.Lock()
		if rest == "" {
			routes := make([]string, 0, len(k.watch))
			for r := range k.watch {
				routes = append(routes, r)
			}
			slices.Sort(routes)
			if len(routes) == 0 {
				fmt.Fprintln(k.out, "watching every push")
			} else {
				fmt.Fprintf(k.out, "watching %s\n", strings.Join(routes, " "))
			}
		} else {
			k.watch[rest] = true
		}
		k.mu.Unlock()
	case "unwatch":
		k.mu.Lock()
		if rest == "" {
			clear(k.watch)
		} else {
			delete(k.watch, rest)
		}
		k.mu.Unlock()
	case "dict":
		k.printDict(c)
	case "help":
		k.printf("%s", helpText)
	case "quit", "exit":
		return true
	default:
		k.errorf("unknown command %q (try help)", cmd)
	}
	return false
}

// routeAndBody splits "ROUTE [JSON]" and checks the JSON, so a typo is
// reported here rather than as a puzzling server error.
func (k *console) routeAndBody(cmd, rest string) (string, []byte, bool) {
	route, body, _ := strings.Cut(rest, " ")
	body = strings.TrimSpace(body)
	if route == "" {
		k.errorf("usage: %s ROUTE [JSON]", cmd)
		return "", nil, false
	}
	if body == "" {
		body = "{}"
	}
	if !json.Valid([]byte(body)) {
		k.errorf("%s %s: body is not valid JSON: %s", cmd, route, body)
		return "", nil, false
	}
	return route, []byte(body), true
}

func (k *console) awaitResponse(ctx context.Context, p *client.Pending, route string, start time.Time) {
	resp, err := p.Wait(ctx)
	rtt := time.Since(start)
	if err != nil {
		k.errorf("%v", err)
		return
	}
	k.printf("response %s (%v)\n%s\n", route, rtt.Round(time.Microsecond), prettyJSON(resp))
}

func (k *console) printDict(c *client.Client) {
	var d = c.Handshake().Sys.Dict
	k.mu.Lock()
	defer k.mu.Unlock()
	if d.Len() == 0 {
		fmt.Fprintln(k.out, "no dictionary")
		return
	}
	for i, r := range d.Routes() {
		fmt.Fprintf(k.out, "%5d %s\n", i+1, r)
	}
}

// prettyJSON indents a JSON body; anything else is quoted so that binary
// bodies stay on screen readable.
func prettyJSON(b []byte) string {
	var buf bytes.Buffer
	if json.Indent(&buf, b, "", "  ") == nil {
		return buf.String()
	}
	return fmt.Sprintf("%q", b)
}

// compactJSON puts a JSON body on one line (pushes are one line each).
func compactJSON(b []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, b) == nil {
		return buf.String()
	}
	return fmt.Sprintf("%q", b)
}
