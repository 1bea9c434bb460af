// Command wsbench-server serves a binary-message echo over WebSocket (or raw
// Pomelo-style TCP for -impl=tcp) with one of several candidate libraries, so
// that their per-connection memory and echo throughput can be compared.
//
// Every implementation except netpoll is served behind the same sniffing
// acceptor the shaddock connector will use: the first four bytes of an
// accepted connection are peeked through a bufio.Reader; "GET " means an HTTP
// upgrade, anything else a raw TCP package stream.
//
// A second listener (-stats) answers GET /stats with runtime counters as JSON;
// GET /stats?gc=1 runs a full GC and returns freed memory to the OS first.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
)

// config holds the knobs shared by the implementations.
type config struct {
	readBuf    int   // per-connection read buffer for libraries that keep one; 0: library defaults
	writeBuf   int   // per-connection write buffer (gorilla; pooled)
	maxPayload int64 // largest accepted frame payload
	// respawn runs each connection's read loop on a fresh goroutine once
	// the handshake is done, instead of on the goroutine that did it. The
	// handshake grows the stack to 4-8 KiB and the runtime only shrinks a
	// stack whose use is under a quarter of its size, so a loop left on the
	// handshake goroutine keeps the larger stack for the connection's life.
	respawn bool
	// idleSpawn (gobwas, tcp) moves every idle wait to a fresh goroutine.
	idleSpawn bool
	// writev (gobwas) writes header and payload with writev instead of
	// copying both into one pooled buffer.
	writev bool
	// stackWork makes every message handler use about this many bytes of
	// stack first, standing in for a real connector's decode and routing.
	stackWork int
}

// spawn runs f on a new goroutine if cfg.respawn, else on this one.
func (cfg config) spawn(f func()) {
	if cfg.respawn {
		go f()
		return
	}
	f()
}

// sessions counts connections that completed the handshake and are live.
var sessions atomic.Int64

var impls = map[string]func(net.Listener, config) error{
	"gorilla": runGorilla,
	"gobwas":  runGobwas,
	"gws":     runGws,
	"coder":   runCoder,
	"tcp":     runTCP,
	"netpoll": runNetpoll,
}

func main() {
	impl := flag.String("impl", "gobwas", "implementation: gorilla, gobwas, gws, coder, tcp, netpoll")
	addr := flag.String("addr", "127.0.0.1:9100", "listen address (loopback only)")
	statsAddr := flag.String("stats", "", "stats HTTP address (default: -addr port + 1)")
	readBuf := flag.Int("rbuf", 512, "read buffer size for libraries that hold one per connection (gorilla, gws, netpoll); 0 keeps each library's default buffering")
	writeBuf := flag.Int("wbuf", 512, "write buffer size (gorilla, pooled)")
	respawn := flag.Bool("respawn", true, "start each read loop on a fresh goroutine after the handshake")
	idleSpawn := flag.Bool("idlespawn", false, "gobwas, tcp: park every idle wait on a fresh goroutine")
	stackWork := flag.Int("stackwork", 0, "bytes of stack each message handler uses (simulated decode/routing work)")
	writev := flag.Bool("writev", false, "gobwas: write header+payload with writev (net.Buffers) instead of one copied buffer")
	flag.Parse()

	run, ok := impls[*impl]
	if !ok {
		log.Fatalf("unknown -impl %q", *impl)
	}
	if *statsAddr == "" {
		*statsAddr = nextPort(*addr)
	}
	for _, a := range []string{*addr, *statsAddr} {
		if !isLoopback(a) {
			log.Fatalf("refusing to listen on non-loopback address %q", a)
		}
	}

	statsLn, err := net.Listen("tcp", *statsAddr)
	if err != nil {
		log.Fatal(err)
	}
	go func() { log.Fatal(http.Serve(statsLn, http.HandlerFunc(serveStats))) }()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("wsbench-server impl=%s addr=%s stats=%s pid=%d respawn=%v idlespawn=%v writev=%v stackwork=%d\n",
		*impl, ln.Addr(), statsLn.Addr(), os.Getpid(), *respawn, *idleSpawn, *writev, *stackWork)
	cfg := config{
		readBuf:    *readBuf,
		writeBuf:   *writeBuf,
		maxPayload: 64 << 10,
		respawn:    *respawn,
		idleSpawn:  *idleSpawn,
		writev:     *writev,
		stackWork:  *stackWork,
	}
	log.Fatal(run(ln, cfg))
}

// Stats is the JSON document served on the stats listener.
type Stats struct {
	Goroutines int    `json:"goroutines"`
	Sessions   int64  `json:"sessions"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	Sys        uint64 `json:"sys"`
	NumGC      uint32 `json:"num_gc"`
	Mallocs    uint64 `json:"mallocs"`
	TotalAlloc uint64 `json:"total_alloc"`
}

func serveStats(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("gc") == "1" {
		runtime.GC()
		debug.FreeOSMemory()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := Stats{
		Goroutines: runtime.NumGoroutine(),
		Sessions:   sessions.Load(),
		HeapAlloc:  ms.HeapAlloc,
		HeapInuse:  ms.HeapInuse,
		StackInuse: ms.StackInuse,
		Sys:        ms.Sys,
		NumGC:      ms.NumGC,
		Mallocs:    ms.Mallocs,
		TotalAlloc: ms.TotalAlloc,
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func nextPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		log.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p == 0 {
		log.Fatalf("cannot derive -stats from %q; pass -stats", addr)
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(p+1))
}

// work simulates per-message processing that needs n bytes of stack.
func work(n int) {
	if n > 0 {
		burnStack(n)
	}
}

//go:noinline
func burnStack(n int) byte {
	var buf [256]byte
	buf[n%len(buf)] = byte(n)
	if n <= len(buf) {
		return buf[0]
	}
	return burnStack(n-len(buf)) + buf[n%len(buf)]
}
