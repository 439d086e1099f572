package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/internal/profile"
	"github.com/ipcluster/ipcluster/launchers"
)

// inJobEnv is set in the script of a job that holds the controller
// (--controller-in-job): the ipcluster mpiexec it runs records the batch
// job in the cluster state, so that ipcluster stop elsewhere cancels it.
const inJobEnv = "IPCLUSTER_CONTROLLER_IN_JOB"

// inJobCommand is what a job that holds the controller runs: ipcluster
// mpiexec, which starts the controller on the job's first node and the
// engines as the job's ranks, with srun where no mpiexec is named.
func inJobCommand(self string, n int, ip, mpiexec string, timeout time.Duration) string {
	if ip == "" {
		ip = "auto" // where the compute nodes and the login node reach it
	}
	if mpiexec == "" {
		mpiexec = "srun"
	}
	q := launchers.ShellQuote
	return fmt.Sprintf("%s mpiexec -n %d --ip %s --mpiexec %s --timeout %s", q(self), n, q(ip), q(mpiexec), timeout)
}

// inJobEnvironment is what the script of a job that holds the controller
// exports: where the profile is (a directory the login node shares), and
// the mark that makes the controller record its job.
func inJobEnvironment(p *profile.Profile, cfg *profile.Config, kind string) ([]string, error) {
	base, err := profile.BaseDir()
	if err != nil {
		return nil, err
	}
	return []string{"IPCLUSTER_DIR=" + base, "IPCLUSTER_PROFILE=" + p.Name,
		"IPCLUSTER_LOG_LEVEL=" + cfg.Log.Level, inJobEnv + "=" + kind}, nil
}

// runControllerInJob submits a job whose script starts the controller and
// the engines, waits until its controller has written the profile's
// connection files and its n engines have registered, and returns: the
// cluster lives in the job. Until then, an error or Ctrl-C cancels the job.
func runControllerInJob(cmd *cobra.Command, p *profile.Profile, sched launchers.Scheduler, b *launchers.Batch, n int, timeout time.Duration) (err error) {
	out := cmd.OutOrStdout()
	if err := checkNoCluster(cmd.Context(), p); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	start := time.Now()
	if err := b.Start(ctx); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			b.Stop(30 * time.Second)
			err = fmt.Errorf("%w (%s job %s cancelled)", err, sched.Name(), b.ID())
		}
	}()
	fmt.Fprintf(cmd.ErrOrStderr(), "ipcluster: submitted %s job %s; waiting for its controller and %d engines\n", sched.Name(), b.ID(), n)
	// The job may wait in the queue: its controller announces itself in
	// the profile's state file, which names the job it runs in.
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var st *profile.State
	for st == nil {
		if s, err := profile.ReadState(p.StatePath()); err == nil && sameBatchJob(s.BatchID, b.ID()) {
			st = s
			break
		}
		select {
		case <-b.Done():
			return errors.New(b.FailureReport())
		case <-ctx.Done():
			return waitError(cmd.Context(), "for the job's controller", timeout)
		case <-tick.C:
		}
	}
	// Watch the job while waiting for its engines.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		select {
		case <-b.Done():
			stopWatch()
		case <-wctx.Done():
		}
	}()
	c, err := client.Connect(wctx, client.Options{Profile: p.Name})
	if err == nil {
		err = c.WaitForEngines(wctx, n)
		c.Close()
	}
	if err != nil {
		select {
		case <-b.Done():
			return errors.New(b.FailureReport())
		default:
		}
		if ctx.Err() != nil {
			return waitError(cmd.Context(), "for the job's engines", timeout)
		}
		return fmt.Errorf("the controller in %s job %s: %w", sched.Name(), b.ID(), err)
	}
	fmt.Fprintf(out, "ipcluster: %s job %s: the controller runs in it on %s; %d engines registered in %.1f s (profile %q)\n",
		sched.Name(), b.ID(), st.Host, n, time.Since(start).Seconds(), p.Name)
	fmt.Fprintf(out, "  connection file: %s\n  controller:      %s\n  output of the job: %s\n", p.ClientFile(), st.ClientEndpoint, b.OutputFile)
	fmt.Fprintf(out, "Stop it with: %s\n", stopCommand(p, 0))
	return nil
}

// waitError says why waiting ended: Ctrl-C, or the timeout.
func waitError(parent context.Context, what string, timeout time.Duration) error {
	if parent.Err() != nil {
		return fmt.Errorf("interrupted while waiting %s", what)
	}
	return fmt.Errorf("waited %s %s (--timeout)", timeout, what)
}

// checkNoCluster refuses to start a controller in a job for a profile that
// has a cluster already: one running here, or one in a batch job that has
// not ended.
func checkNoCluster(ctx context.Context, p *profile.Profile) error {
	if _, running, err := p.Running(); err != nil {
		return err
	} else if running {
		return fmt.Errorf("a cluster is running for profile %q: --controller-in-job starts one of its own (stop it, or use --profile)", p.Name)
	}
	st, err := profile.ReadState(p.StatePath())
	if err != nil || st.BatchID == "" {
		return nil
	}
	sched, ok := schedulerOf(st.Batch)
	if !ok {
		return fmt.Errorf("profile %q has its controller in %s job %s, which ipcluster cannot ask about: use another --profile", p.Name, st.Batch, st.BatchID)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	state, finished, _, err := sched.Poll(ctx, st.BatchID)
	switch {
	case err != nil:
		return fmt.Errorf("profile %q has its controller in %s job %s, and %s does not say whether it still runs: %w", p.Name, st.Batch, st.BatchID, st.Batch, err)
	case !finished:
		return fmt.Errorf("profile %q has its controller in %s job %s (%s): stop it (ipcluster stop), or use --profile", p.Name, st.Batch, st.BatchID, state)
	}
	return profile.RemoveState(p.StatePath()) // the job is gone: its state is stale
}

// sameBatchJob reports whether the id a job sees for itself (SLURM_JOB_ID,
// PBS_JOBID) names the job submitted as submitted: PBS may add its
// server's name ("123.server").
func sameBatchJob(inJob, submitted string) bool {
	if inJob == "" {
		return false
	}
	return inJob == submitted || strings.HasPrefix(submitted, inJob+".") || strings.HasPrefix(inJob, submitted+".")
}

// inBatchJob returns the state of a cluster whose controller runs in a
// batch job, if the profile has one.
func inBatchJob(p *profile.Profile) (*profile.State, bool) {
	st, err := profile.ReadState(p.StatePath())
	if err != nil || st.BatchID == "" {
		return nil, false
	}
	return st, true
}

// stopInJob stops a cluster whose controller runs in a batch job: it asks
// the controller to shut down, which ends the job; a job that does not
// end, or a controller that does not answer, is cancelled.
func stopInJob(cmd *cobra.Command, p *profile.Profile, st *profile.State) error {
	sched, ok := schedulerOf(st.Batch)
	if !ok {
		return fmt.Errorf("profile %q: the controller runs in a %s job, which ipcluster cannot manage", p.Name, st.Batch)
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 60*time.Second)
	defer cancel()
	ended := false
	if askShutdown(ctx, p, 10*time.Second) {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			if _, finished, _, err := sched.Poll(ctx, st.BatchID); err == nil && finished {
				ended = true
				break
			}
		}
	}
	how := "shut down"
	if !ended {
		if err := sched.Cancel(ctx, st.BatchID); err != nil {
			return err
		}
		how = "cancelled"
	}
	profile.RemoveState(p.StatePath()) // a cancelled controller leaves it
	os.Remove(p.ClientFile())
	os.Remove(p.EngineFile())
	fmt.Fprintf(cmd.OutOrStdout(), "ipcluster: stopped the cluster of profile %q: %s job %s %s\n", p.Name, st.Batch, st.BatchID, how)
	return nil
}
