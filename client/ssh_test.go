package client_test

import (
	"context"
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

// TestThroughSSH reaches a real controller (ZeroMQ, CURVE) only through a
// real sshd on loopback, with the system ssh and the built-in one: apply,
// and push and pull of 10 MB; and once the sshd is gone, nothing more.
func TestThroughSSH(t *testing.T) {
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
	e, err := engine.New(engine.Options{Connection: ctrl.EngineInfo()})
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { e.Run(runCtx) })

	big := make([]float64, 10<<20/8)
	for i := range big {
		big[i] = float64(i)
	}
	for _, builtin := range []bool{false, true} {
		name := map[bool]string{false: "system ssh", true: "built-in ssh"}[builtin]
		t.Run(name, func(t *testing.T) {
			s := testenv.NeedSSHD(t)
			c, err := client.Connect(ctx, client.Options{Connection: ctrl.ClientInfo(), SSHServer: s.Server,
				SSH: client.SSHOptions{Builtin: builtin, IdentityFile: s.IdentityFile, KnownHosts: []string{s.KnownHosts},
					Args: []string{"-F", "/dev/null", "-o", "BatchMode=yes"}}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Endpoint() == ctrl.ClientInfo().Endpoint || !strings.HasPrefix(c.Endpoint(), "tcp://127.0.0.1:") {
				t.Errorf("the client connects to %s, not to a tunnel's local port (the controller is at %s)", c.Endpoint(), ctrl.ClientInfo().Endpoint)
			}
			if err := c.WaitForEngines(ctx, 1); err != nil {
				t.Fatal(err)
			}
			res, err := c.Apply(ctx, "echo", []any{"through ssh"}, client.Targets(client.All), client.Block)
			if err != nil || res[0] != "through ssh" {
				t.Fatalf("apply through ssh: %v, %v", res, err)
			}
			dv := c.DirectView(client.All)
			r, err := dv.Push(ctx, map[string]any{"big": big})
			if err == nil {
				_, err = r.Get(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
			r, err = dv.Pull(ctx, "big")
			if err != nil {
				t.Fatal(err)
			}
			got, err := client.Results[[]float64](ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got[0], big) {
				t.Error("10 MB pulled back through ssh differ from those pushed")
			}
			// The traffic went through the tunnel: without the sshd
			// (and the sessions it serves), the controller is out of reach.
			s.Stop()
			short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
			defer cancelShort()
			if res, err := c.Apply(short, "echo", []any{"direct?"}, client.Targets(client.All), client.Block); err == nil {
				t.Errorf("an apply succeeded with the sshd gone (%v): the client does not use the tunnel", res)
			}
		})
	}
	// An unknown host key is refused, with the way to accept it.
	s := testenv.NeedSSHD(t)
	_, err = client.Connect(ctx, client.Options{Connection: ctrl.ClientInfo(), SSHServer: s.Server,
		SSH: client.SSHOptions{Builtin: true, IdentityFile: s.IdentityFile, KnownHosts: []string{s.EmptyKnownHosts(t)}}})
	if err == nil || !strings.Contains(err.Error(), "is not known") {
		t.Errorf("connect with an unknown host key: %v", err)
	}
}
