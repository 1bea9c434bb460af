package handler

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// Request is one client message as a handler receives it.
type Request struct {
	Route   string // full route, serverType.handler.method
	Body    []byte // valid until the handler returns
	Notify  bool   // no response is expected
	Session Session
}

// Func handles a client message and returns the response body. For a notify
// the returned body is discarded.
type Func func(ctx context.Context, r Request) ([]byte, error)

// AsyncFunc is a handler that answers later without blocking the caller:
// returning true it has taken the message and calls done exactly once,
// from any goroutine, with what a Func would have returned; returning
// false it leaves the message to a Func (connector.Config.AsyncHandler).
type AsyncFunc func(ctx context.Context, r Request, done func(resp []byte, err error)) bool

// Filter wraps a handler, Pomelo's before/after filters in one shape: code
// before next runs before the handler (return without calling next to stop
// the request), code after it sees the response and error.
type Filter func(next Func) Func

// Before returns a filter running fn before the handler; an error from fn
// stops the request and becomes its response.
func Before(fn func(ctx context.Context, r Request) error) Filter {
	return func(next Func) Func {
		return func(ctx context.Context, r Request) ([]byte, error) {
			if err := fn(ctx, r); err != nil {
				return nil, err
			}
			return next(ctx, r)
		}
	}
}

// After returns a filter running fn after the handler with its outcome.
func After(fn func(ctx context.Context, r Request, resp []byte, err error)) Filter {
	return func(next Func) Func {
		return func(ctx context.Context, r Request) ([]byte, error) {
			resp, err := next(ctx, r)
			fn(ctx, r, resp, err)
			return resp, err
		}
	}
}

// Mux routes client messages to handlers by route. Register everything before
// serving; lookups are then read-only and safe for concurrent use.
type Mux struct {
	routes      map[string]Func
	nonBlocking map[string]bool // routes registered with HandleNonBlocking
	filters     []Filter
	sealed      map[string]Func // routes with filters applied, built on first Lookup
}

// NewMux returns an empty mux.
func NewMux() *Mux { return &Mux{routes: make(map[string]Func)} }

// Handle registers h for route, which must have the form
// serverType.handler.method. Registering a route twice panics, like
// http.ServeMux: it is a programming error found at start-up.
func (m *Mux) Handle(route string, h Func) {
	if err := ValidRoute(route); err != nil {
		panic(fmt.Sprintf("handler: %v", err))
	}
	if _, dup := m.routes[route]; dup {
		panic(fmt.Sprintf("handler: route %q registered twice", route))
	}
	if m.sealed != nil {
		panic("handler: Handle after the mux started serving")
	}
	m.routes[route] = h
}

// HandleNonBlocking registers h for route, as Handle does, and declares
// that h (with the mux's filters) never blocks: it does not wait for a
// remote call's answer, a lock held across I/O, a timer or a channel
// another message fills. A backend then runs it on the goroutine that
// received the message, one message of a batch after the other, instead of
// handing each message to a goroutine of its own, and sends the replies
// and the one-way pushes those handlers made together once the batch is
// done. That saves a goroutine handoff per message; a handler that blocks
// there holds up every message behind it on its stream, so use Handle for
// anything that might wait. (The cluster logs a warning naming the routes
// of a batch of such messages that took over 100 ms.)
func (m *Mux) HandleNonBlocking(route string, h Func) {
	m.Handle(route, h)
	if m.nonBlocking == nil {
		m.nonBlocking = make(map[string]bool)
	}
	m.nonBlocking[route] = true
}

// NonBlocking reports whether route was registered with HandleNonBlocking.
func (m *Mux) NonBlocking(route string) bool { return m.nonBlocking[route] }

// Use adds filters; the first added runs outermost.
func (m *Mux) Use(f ...Filter) {
	if m.sealed != nil {
		panic("handler: Use after the mux started serving")
	}
	m.filters = append(m.filters, f...)
}

// Seal applies filters to every route and freezes the mux. It is called on
// first use; calling it explicitly before serving avoids a data race between
// the first concurrent lookups.
func (m *Mux) Seal() {
	if m.sealed != nil {
		return
	}
	s := make(map[string]Func, len(m.routes))
	for r, h := range m.routes {
		for i := len(m.filters) - 1; i >= 0; i-- {
			h = m.filters[i](h)
		}
		s[r] = h
	}
	m.sealed = s
}

// Lookup returns the handler for route, filters applied.
func (m *Mux) Lookup(route string) (Func, bool) {
	m.Seal()
	h, ok := m.sealed[route]
	return h, ok
}

// Serve runs the handler for r.Route, or answers 404.
func (m *Mux) Serve(ctx context.Context, r Request) ([]byte, error) {
	h, ok := m.Lookup(r.Route)
	if !ok {
		return nil, Errorf(CodeNotFound, "no handler for route %q", r.Route)
	}
	return h(ctx, r)
}

// Routes returns the registered routes, sorted.
func (m *Mux) Routes() []string {
	out := make([]string, 0, len(m.routes))
	for r := range m.routes {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// ServerType returns the server type a route addresses: the part before the
// first dot.
func ServerType(route string) string {
	if i := strings.IndexByte(route, '.'); i > 0 {
		return route[:i]
	}
	return ""
}

// ValidRoute checks that route has the form a.b.c with non-empty parts.
func ValidRoute(route string) error {
	parts := strings.Split(route, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return fmt.Errorf("route %q is not serverType.handler.method", route)
	}
	return nil
}
