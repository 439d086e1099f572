package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/internal/profile"
)

func newStop(g *globals) *cobra.Command {
	var job int
	var batch string
	cmd := &cobra.Command{
		Use:   "stop",
		Short: "Stop the cluster of a profile, or one of its jobs, from any shell",
		Long: `Stop asks the profile's controller to shut down its engines and itself,
and waits for the cluster's process to exit. If the controller does not
answer, the process is sent SIGTERM, then SIGKILL.

With --job N it stops only job N (as ipcluster engines numbers them): its
engines shut down, its launcher (mpiexec) ends, and the rest of the
cluster keeps running.

A cluster whose controller runs in a batch job (ipcluster slurm
--controller-in-job) is stopped from any host that shares the profile: the
controller is asked to shut down, which ends its job; a job that does not
end is cancelled.`,
		Example: `  ipcluster stop
  ipcluster stop --job 2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := profile.Open(g.profile)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("job") {
				return stopJob(cmd, p, job)
			}
			if batch != "" {
				return stopBatch(cmd, p, batch)
			}
			if st, ok := inBatchJob(p); ok {
				return stopInJob(cmd, p, st)
			}
			pid, running, err := p.Running()
			if err != nil {
				return err
			}
			if !running {
				return fmt.Errorf("no cluster is running for profile %q", p.Name)
			}
			if !askShutdown(cmd.Context(), p, 5*time.Second) || !waitGone(pid, 15*time.Second) {
				syscall.Kill(pid, syscall.SIGTERM)
				if !waitGone(pid, 10*time.Second) {
					syscall.Kill(pid, syscall.SIGKILL)
					killEngines(p)
					waitGone(pid, 5*time.Second)
				}
			}
			// Jobs that joined from other processes end with their engines.
			for _, j := range p.Jobs() {
				if j.Owner > 0 && !waitGone(j.Owner, 10*time.Second) {
					syscall.Kill(j.Owner, syscall.SIGTERM)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ipcluster: stopped the cluster of profile %q (pid %d)\n", p.Name, pid)
			return nil
		},
	}
	cmd.Flags().IntVar(&job, "job", 0, "stop only this job (see ipcluster engines)")
	cmd.Flags().StringVar(&batch, "batch", "", "cancel the batch job that joined with this id, even one still in the queue (see ipcluster status)")
	return cmd
}

// stopJob stops one job: its engines, then the process that launched it,
// if that runs apart from the controller.
// stopBatch cancels a batch job that joined the cluster, by its batch
// system's id, such as one still waiting in the queue; the process that
// submitted it then ends.
func stopBatch(cmd *cobra.Command, p *profile.Profile, batchID string) error {
	for _, j := range p.Jobs() {
		if j.BatchID != batchID {
			continue
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
		defer cancel()
		sched, ok := schedulerOf(j.Kind)
		if !ok {
			return fmt.Errorf("job %s was launched by %s, not a batch system", batchID, j.Kind)
		}
		if err := sched.Cancel(ctx, batchID); err != nil {
			return err
		}
		if j.Owner > 0 && !waitGone(j.Owner, 30*time.Second) {
			syscall.Kill(j.Owner, syscall.SIGTERM)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "ipcluster: cancelled %s job %s of profile %q\n", j.Kind, batchID, p.Name)
		return nil
	}
	if st, err := profile.ReadState(p.StatePath()); err == nil && len(st.Jobs) > 0 && st.Jobs[0].BatchID == batchID {
		return fmt.Errorf("%s job %s is the cluster's first job, with the controller: stop the cluster (ipcluster stop)", st.Jobs[0].Kind, batchID)
	}
	return fmt.Errorf("no job of profile %q has batch id %s (see ipcluster status)", p.Name, batchID)
}

func stopJob(cmd *cobra.Command, p *profile.Profile, id int) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, client.Options{Profile: p.Name})
	if err != nil {
		return err
	}
	defer c.Close()
	info, ok := c.Job(id).Info()
	if !ok {
		var ids []int
		for _, j := range c.Jobs() {
			ids = append(ids, j.ID)
		}
		msg := fmt.Sprintf("job %d has no registered engines (jobs: %v)", id, ids)
		for _, j := range p.Jobs() {
			if j.BatchID != "" && j.ID == 0 {
				msg += fmt.Sprintf("; %s job %s has none yet: ipcluster stop --batch %s", j.Kind, j.BatchID, j.BatchID)
			}
		}
		return errors.New(msg)
	}
	if err := c.Job(id).Stop(ctx); err != nil {
		return fmt.Errorf("stopping job %d: %w", id, err)
	}
	for _, j := range p.Jobs() {
		if j.Key == info.Key && j.Owner > 0 && !waitGone(j.Owner, 15*time.Second) {
			syscall.Kill(j.Owner, syscall.SIGTERM)
		}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "ipcluster: stopped job %d (%d engines) of profile %q\n", id, len(info.Engines), p.Name)
	return nil
}

// askShutdown asks the profile's controller to shut down the cluster, and
// reports whether it agreed within timeout.
func askShutdown(ctx context.Context, p *profile.Profile, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := client.Connect(ctx, client.Options{Profile: p.Name})
	if err != nil {
		return false
	}
	defer c.Close()
	return c.ShutdownCluster(ctx) == nil
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
