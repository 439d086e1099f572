package engine_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/controller"
	"github.com/ipcluster/ipcluster/engine"
	"github.com/ipcluster/ipcluster/internal/testenv"
)

// TestEngineThroughSSH runs an engine whose connection names an ssh
// server, as --engine-ssh makes it for compute nodes: it reaches a real
// controller through a real sshd on loopback, with the system ssh and the
// built-in one, and serves work.
func TestEngineThroughSSH(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ctrl, err := controller.New(controller.Config{})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	wg.Go(func() { ctrl.Run(runCtx) })
	c, err := client.Connect(ctx, client.Options{Connection: ctrl.ClientInfo()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	for _, builtin := range []bool{false, true} {
		s := testenv.NeedSSHD(t)
		ci := *ctrl.EngineInfo()
		ci.SSHServer = s.Server
		e, err := engine.New(engine.Options{Connection: &ci, SSH: engine.SSHOptions{Builtin: builtin,
			IdentityFile: s.IdentityFile, KnownHosts: []string{s.KnownHosts}, Args: []string{"-F", "/dev/null", "-o", "BatchMode=yes"}}})
		if err != nil {
			t.Fatal(err)
		}
		engCtx, stopEngine := context.WithCancel(runCtx)
		done := make(chan error, 1)
		go func() { done <- e.Run(engCtx) }()
		select {
		case <-e.Registered():
		case err := <-done:
			t.Fatalf("builtin %v: Run = %v before registering", builtin, err)
		}
		for !slices.Contains(c.IDs(), e.ID()) { // until the client has heard of it
			if _, err := c.Engines(ctx); err != nil {
				t.Fatal(err)
			}
		}
		res, err := c.Apply(ctx, "echo", []any{"over ssh"}, client.Targets(client.Engines(e.ID())), client.Block)
		if err != nil || res[e.ID()] != "over ssh" {
			t.Errorf("builtin %v: apply on the engine through ssh: %v %v", builtin, res, err)
		}
		// The engine's traffic went through the tunnel: without the sshd,
		// the engine is out of the controller's reach.
		s.Stop()
		short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
		if res, err := c.Apply(short, "echo", []any{"direct?"}, client.Targets(client.Engines(e.ID())), client.Block); err == nil {
			t.Errorf("builtin %v: an apply reached the engine with the sshd gone (%v): it does not use the tunnel", builtin, res)
		}
		cancelShort()
		stopEngine()
		if err := <-done; err != nil {
			t.Errorf("builtin %v: Run = %v", builtin, err)
		}
	}

	// An ssh server that does not answer is a clear error, not a hang.
	ci := *ctrl.EngineInfo()
	ci.SSHServer = "nobody@127.0.0.1:1"
	e, _ := engine.New(engine.Options{Connection: &ci, SSH: engine.SSHOptions{Builtin: true}})
	err = e.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "through ssh") || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run with a dead ssh server = %v", err)
	}
}
