// Command sleeper is the server the launch tests start: it reports what it
// was given on stdout (its log), then sleeps, ticks or exits as told.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	id := flag.String("id", "", "server id (only so that it is on the command line)")
	sleep := flag.Duration("sleep", time.Hour, "how long to run")
	code := flag.Int("exit", 0, "exit status after -sleep")
	env := flag.String("env", "", "comma-separated variables to print")
	termExit := flag.Int("term-exit", 0, "exit status on SIGTERM")
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM")
	lines := flag.Int("lines", 0, "numbered lines to print first")
	flag.Parse()

	wd, _ := os.Getwd()
	fmt.Printf("sleeper %s pid=%d cwd=%s args=%q\n", *id, os.Getpid(), wd, os.Args[1:])
	if *env != "" {
		for _, k := range strings.Split(*env, ",") {
			if v, ok := os.LookupEnv(k); ok {
				fmt.Printf("env %s=%s\n", k, v)
			} else {
				fmt.Printf("env %s unset\n", k)
			}
		}
	}
	for i := 1; i <= *lines; i++ {
		fmt.Printf("line %d\n", i)
	}
	fmt.Fprintln(os.Stderr, "sleeper stderr")

	sig := make(chan os.Signal, 1)
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(sig, syscall.SIGTERM)
	}
	select {
	case <-sig:
		fmt.Println("sleeper got SIGTERM")
		os.Exit(*termExit)
	case <-time.After(*sleep):
		fmt.Println("sleeper done")
		os.Exit(*code)
	}
}
