package client_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ipcluster/ipcluster/controller"
	"github.com/ipcluster/ipcluster/engine"
	"github.com/ipcluster/ipcluster/internal/profile"
	"github.com/ipcluster/ipcluster/wire"
)

// TestMain runs, for the examples, a real cluster (ZeroMQ, CURVE) of four
// engines in this process, and publishes its connection file as the
// default profile's in a temporary IPCLUSTER_DIR: the examples connect
// exactly as user programs do.
func TestMain(m *testing.M) {
	stop, err := exampleCluster(4)
	if err != nil {
		fmt.Fprintln(os.Stderr, "example cluster:", err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func exampleCluster(n int) (stop func(), err error) {
	dir, err := os.MkdirTemp("", "ipcluster-example-")
	if err != nil {
		return nil, err
	}
	os.Setenv("IPCLUSTER_DIR", dir)
	os.Unsetenv("IPCLUSTER_PROFILE")
	ctrl, err := controller.New(controller.Config{})
	if err != nil {
		return nil, err
	}
	p, _ := profile.Open("")
	if err := wire.WriteConnectionFile(p.ClientFile(), ctrl.ClientInfo()); err != nil {
		return nil, err
	}
	// Programs that start engines find the controller as a launcher's
	// engines do, through their environment.
	if err := wire.WriteConnectionFile(p.EngineFile(), ctrl.EngineInfo()); err != nil {
		return nil, err
	}
	os.Setenv(engine.ConnectionFileEnv, p.EngineFile())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { ctrl.Run(ctx) })
	for i := range n {
		// The engines are the ranks of one job, as under ipcluster mpiexec.
		e, err := engine.New(engine.Options{Connection: ctrl.EngineInfo(), JobKey: "example-job", Rank: i, Size: n})
		if err != nil {
			cancel()
			return nil, err
		}
		e.Register("square", func(x int) int { return x * x })
		e.Register("rank", func() int { return i })
		wg.Go(func() { e.Run(ctx) })
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := ctrl.WaitEngines(wctx, n); err != nil {
		cancel()
		wg.Wait()
		return nil, err
	}
	return func() {
		cancel()
		wg.Wait()
		os.RemoveAll(dir)
	}, nil
}
