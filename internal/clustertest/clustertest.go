// Package clustertest starts a whole cluster inside a test process: a
// controller and engines as goroutines, over an in-memory network by
// default, so that tests of the client, controller and engine exercise
// the real code paths without processes or ports.
package clustertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/controller"
	"github.com/ipcluster/ipcluster/engine"
	"github.com/ipcluster/ipcluster/transport"
	"github.com/ipcluster/ipcluster/transport/memnet"
)

// Options configure a test cluster.
type Options struct {
	Engines    int
	Network    transport.Network // default: a fresh memnet
	Controller controller.Config // Network and Logger are filled in
	// Setup, if set, is called on each engine before it runs.
	Setup func(i int, e *engine.Engine) error
}

// Cluster is a running test cluster.
type Cluster struct {
	Controller *controller.Controller
	Engines    []*engine.Engine
	Net        transport.Network

	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	cancels []context.CancelFunc
	errs    []error
}

// Start starts a cluster and waits until its engines have registered. It
// is stopped when the test ends.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{Net: opts.Network}
	if c.Net == nil {
		c.Net = memnet.New()
	}
	cfg := opts.Controller
	cfg.Network = c.Net
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	ctrl, err := controller.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Controller = ctrl
	c.ctx, c.stop = context.WithCancel(context.Background())
	c.wg.Go(func() {
		if err := ctrl.Run(c.ctx); err != nil {
			c.record(err)
		}
	})
	t.Cleanup(func() { c.Stop(t) })
	for range opts.Engines {
		c.AddEngine(t, opts.Setup)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ctrl.WaitEngines(ctx, opts.Engines); err != nil {
		t.Fatal(err)
	}
	// The controller counts an engine when it registers it; wait until each
	// engine has heard so too, so that its ID is known.
	for _, e := range c.Engines {
		select {
		case <-e.Registered():
		case <-ctx.Done():
			t.Fatal("an engine never learned its id")
		}
	}
	return c
}

// AddEngine starts one more engine; it does not wait for it to register.
func (c *Cluster) AddEngine(t testing.TB, setup func(int, *engine.Engine) error) *engine.Engine {
	t.Helper()
	return c.AddEngineWith(t, engine.Options{}, setup)
}

// AddEngineWith starts one more engine with the given options (their
// connection, network and logger are the cluster's); it does not wait for
// it to register.
func (c *Cluster) AddEngineWith(t testing.TB, opts engine.Options, setup func(int, *engine.Engine) error) *engine.Engine {
	t.Helper()
	opts.Connection, opts.Network, opts.Logger = c.Controller.EngineInfo(), c.Net, testLogger(t)
	e, err := engine.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	i := len(c.Engines)
	c.Engines = append(c.Engines, e)
	ctx, cancel := context.WithCancel(c.ctx)
	c.cancels = append(c.cancels, cancel)
	c.mu.Unlock()
	if setup != nil {
		if err := setup(i, e); err != nil {
			t.Fatal(err)
		}
	}
	c.wg.Go(func() {
		if err := e.Run(ctx); err != nil {
			c.record(err)
		}
	})
	return e
}

// StopEngine stops the engine with the given id in an orderly way (it
// unregisters).
func (c *Cluster) StopEngine(id int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.Engines {
		if e.ID() == id {
			c.cancels[i]()
			return
		}
	}
	panic(fmt.Sprintf("clustertest: no engine %d", id))
}

func (c *Cluster) record(err error) {
	c.mu.Lock()
	c.errs = append(c.errs, err)
	c.mu.Unlock()
}

// Connect returns a client of the cluster, closed when the test ends.
func (c *Cluster) Connect(t testing.TB) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := client.Connect(ctx, client.Options{Connection: c.Controller.ClientInfo(), Network: c.Net, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// Stop stops the engines and the controller and waits for them. Errors
// they returned, other than a lost controller during shutdown, fail t.
func (c *Cluster) Stop(t testing.TB) {
	c.stop()
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, err := range c.errs {
		if !errors.Is(err, engine.ErrControllerLost) {
			t.Errorf("cluster: %v", err)
		}
	}
	c.errs = nil
}
