package main

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/internal/profile"
)

func newStop(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "stop",
		Short: "Stop the cluster of a profile, from any shell",
		Long: `Stop asks the profile's controller to shut down its engines and itself,
and waits for the cluster's process to exit. If the controller does not
answer, the process is sent SIGTERM, then SIGKILL.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := profile.Open(g.profile)
			if err != nil {
				return err
			}
			pid, running, err := p.Running()
			if err != nil {
				return err
			}
			if !running {
				return fmt.Errorf("no cluster is running for profile %q", p.Name)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			asked := false
			if c, err := client.Connect(ctx, client.Options{Profile: p.Name}); err == nil {
				asked = c.ShutdownCluster(ctx) == nil
				c.Close()
			}
			if !asked || !waitGone(pid, 15*time.Second) {
				syscall.Kill(pid, syscall.SIGTERM)
				if !waitGone(pid, 10*time.Second) {
					syscall.Kill(pid, syscall.SIGKILL)
					killEngines(p)
					waitGone(pid, 5*time.Second)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ipcluster: stopped the cluster of profile %q (pid %d)\n", p.Name, pid)
			return nil
		},
	}
}

// waitGone polls until pid has exited or timeout passes.
func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for profile.Alive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// killEngines kills the engine processes a dead supervisor left behind.
func killEngines(p *profile.Profile) {
	st, err := profile.ReadState(p.StatePath())
	if err != nil {
		return
	}
	for _, e := range st.Engines {
		if profile.Alive(e.PID) {
			syscall.Kill(e.PID, syscall.SIGKILL)
		}
	}
	profile.RemoveState(p.StatePath())
}
