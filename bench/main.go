// Command bench measures ipcluster against its peers and against the
// transport limit, on the same machine in the same run:
//
//	go run ./bench              # full run, a few minutes
//	go run ./bench -smoke       # every workload once at tiny size
//
// It writes bench/results/<date>.{json,md,png} (smoke runs:
// bench/results/smoke/) and prints the markdown table. Peers are installed
// from Debian packages when missing (as root); a peer that cannot be
// installed is reported as missing. Nothing here asserts a time: these are
// measurements, not tests.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ipcluster/ipcluster/transport"
	"github.com/ipcluster/ipcluster/transport/zmqnet"
)

// bench is one run's settings.
type bench struct {
	smoke   bool
	runs    int
	bin     string // the ipcluster command
	out     string // results directory
	profile string // if set, CPU profiles go to files with this prefix
	only    map[string]bool
	peers   bool
	date    string

	scaleProcs int // processes the 1,000 engines of workload 7 run in
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] { // roles of helper processes
		case "relay-broker":
			runBroker()
			return
		case "relay-worker":
			runWorker(os.Args[2])
			return
		case "relay-workers":
			n, _ := strconv.Atoi(os.Args[2])
			runWorkers(n, os.Args[3])
			return
		case "hop-sink":
			runSink()
			return
		case "engines-host":
			n, _ := strconv.Atoi(os.Args[2])
			runEnginesHost(n)
			return
		}
	}
	b := &bench{}
	flag.BoolVar(&b.smoke, "smoke", false, "run every workload once at tiny size")
	flag.IntVar(&b.runs, "runs", 0, "runs per workload (default 5, 1 with -smoke)")
	flag.StringVar(&b.bin, "ipcluster", "bin/ipcluster", "the ipcluster command to measure")
	flag.StringVar(&b.out, "out", "bench/results", "results directory")
	flag.BoolVar(&b.peers, "peers", true, "measure the peers too")
	flag.IntVar(&b.scaleProcs, "scale-procs", 10, "processes that host workload 7's 1,000 engines (a divisor of 1000)")
	prof := flag.Bool("profile", false, "write CPU profiles of controller, engines and client next to the results")
	only := flag.String("only", "", "comma-separated workloads to run (1-9, limits); default all")
	flag.Parse()
	if b.runs == 0 {
		b.runs = 5
		if b.smoke {
			b.runs = 1
		}
	}
	if b.scaleProcs < 1 || 1000%b.scaleProcs != 0 {
		fail(fmt.Errorf("-scale-procs %d: must divide 1000", b.scaleProcs))
	}
	if *only != "" {
		b.only = map[string]bool{}
		for _, w := range strings.Split(*only, ",") {
			b.only[strings.TrimSpace(w)] = true
		}
	}
	b.date = time.Now().UTC().Format("2006-01-02")
	if b.smoke {
		b.out = filepath.Join(b.out, "smoke")
	}
	if err := os.MkdirAll(b.out, 0o755); err != nil {
		fail(err)
	}
	if abs, err := filepath.Abs(b.bin); err == nil {
		b.bin = abs
	}
	if _, err := os.Stat(b.bin); err != nil {
		fail(fmt.Errorf("%s: %w (build it with: make build)", b.bin, err))
	}
	if *prof {
		b.profile = filepath.Join(b.out, "prof-"+b.date)
		f, err := os.Create(b.profile + ".client.prof")
		if err != nil {
			fail(err)
		}
		pprof.StartCPUProfile(f)
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	rep, err := b.run()
	if err != nil {
		fail(err)
	}
	base := filepath.Join(b.out, b.date)
	if err := rep.writeJSON(base + ".json"); err != nil {
		fail(err)
	}
	md, err := os.Create(base + ".md")
	if err != nil {
		fail(err)
	}
	rep.writeMarkdown(md)
	md.Close()
	if err := writeChart(rep, base+".png"); err != nil {
		fail(err)
	}
	rep.writeMarkdown(os.Stdout)
	fmt.Printf("\nwrote %s.{json,md,png}\n", base)
	if failed := rep.failures(); len(failed) > 0 {
		fail(fmt.Errorf("%d measurements failed:\n  %s", len(failed), strings.Join(failed, "\n  ")))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// wants reports whether workload w is to run.
func (b *bench) wants(w string) bool { return b.only == nil || b.only[w] }

// clusterEnv is the environment of the ipcluster processes the run starts.
func (b *bench) clusterEnv() []string {
	env := []string{"IPCLUSTER_LOG_LEVEL=warn"}
	if b.profile != "" {
		env = append(env, "IPCLUSTER_CPUPROFILE="+b.profile)
	}
	return env
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func zmqNetwork() (transport.Network, error) { return zmqnet.New(zmqnet.Options{}) }

// size picks the full or the smoke value.
func (b *bench) size(full, smoke int) int {
	if b.smoke {
		return smoke
	}
	return full
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// fanoutRounds is how many times workload 7 and its relay fan out per
// start: each round is a sample, and a start costs seconds of
// registration, so a run takes many.
func (b *bench) fanoutRounds() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_FANOUT_ROUNDS")); err == nil && n > 0 {
		return n // for profiling: enough rounds to drown the registration
	}
	return b.size(20, 2)
}
