// Command ipcluster runs and steers clusters of Go engines: a controller,
// engines on this machine or as MPI ranks, and clients.
//
//	ipcluster start -n 4     # a controller and 4 engines; Ctrl-C stops them
//	ipcluster engines        # what the engines are doing
//	ipcluster stop           # from another shell
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ipcluster/ipcluster/engine"
)

func main() {
	os.Exit(run(os.Args[1:], options{}))
}

// options adjust the command tree; tests use them to run their own engines.
type options struct {
	// engineSetup, if set, is called on each engine `ipcluster engine` makes.
	engineSetup func(*engine.Engine) error
}

func run(args []string, opts options) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal starts an orderly stop, a second one kills.
	context.AfterFunc(ctx, stop)
	if len(args) > 0 && args[0] != "help" && args[0] != "completion" {
		defer startProfile(args[0])()
	}
	root := newRoot(opts)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ipcluster:", err)
		return 1
	}
	return 0
}
