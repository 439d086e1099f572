package main

import (
	"context"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/internal/profile"
	"github.com/ipcluster/ipcluster/launchers"
	"github.com/ipcluster/ipcluster/pbs"
	"github.com/ipcluster/ipcluster/slurm"
)

func newStatus(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "The cluster of a profile and its jobs, batch jobs with their state",
		Long: `Status shows whether a cluster runs for the profile, where, and its jobs:
how each was launched, its batch job id and the batch system's state
(PENDING, RUNNING, ...), and how many of its engines have registered.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := profile.Open(g.profile)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			pid, running, err := p.Running()
			if err != nil {
				return err
			}
			inJob, hasJob := inBatchJob(p)
			if !running && !hasJob {
				fmt.Fprintf(out, "no cluster is running for profile %q\n", p.Name)
				return nil
			}
			st, err := profile.ReadState(p.StatePath())
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 20*time.Second)
			defer cancel()
			if hasJob {
				fmt.Fprintf(out, "cluster of profile %q: controller in %s job %s (%s) on %s, pid %d there, up %s, clients at %s\n",
					p.Name, inJob.Batch, inJob.BatchID, batchState(ctx, inJob.Batch, inJob.BatchID), inJob.Host, inJob.ControllerPID,
					time.Since(st.Started).Round(time.Second), st.ClientEndpoint)
			} else {
				fmt.Fprintf(out, "cluster of profile %q: pid %d, up %s, clients at %s\n", p.Name, pid,
					time.Since(st.Started).Round(time.Second), st.ClientEndpoint)
			}
			jobs := append(slices.Clone(st.Jobs), p.Jobs()...)
			registered := map[string]client.JobInfo{}
			if c, err := client.Connect(ctx, client.Options{Profile: p.Name}); err == nil {
				for _, j := range c.Jobs() {
					registered[j.Key] = j
				}
				c.Close()
			} else {
				fmt.Fprintf(out, "  (the controller does not answer: %v)\n", err)
			}
			if len(jobs) == 0 {
				fmt.Fprintln(out, "no jobs: the controller runs alone")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tKIND\tBATCH ID\tSTATE\tENGINES\tSTARTED\tOWNER")
			for _, j := range jobs {
				info, ok := registered[j.Key]
				id, engines := "-", fmt.Sprintf("0/%d", j.N)
				if ok {
					id, engines = fmt.Sprint(info.ID), fmt.Sprintf("%d/%d", len(info.Engines), j.N)
				} else if j.ID > 0 && j.Key == "" {
					id = fmt.Sprint(j.ID)
				}
				state := "-"
				if j.BatchID != "" {
					state = batchState(ctx, j.Kind, j.BatchID)
				} else if profile.Alive(j.Owner) {
					state = "RUNNING"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", id, j.Kind, dash(j.BatchID), state, engines,
					j.Started.Format("15:04:05"), j.Owner)
			}
			return tw.Flush()
		},
	}
}

// schedulerOf returns the batch system of a job's kind.
func schedulerOf(kind string) (launchers.Scheduler, bool) {
	switch kind {
	case "slurm":
		return slurm.Commands{}, true
	case "pbs":
		return pbs.Commands{}, true
	}
	return nil, false
}

// batchState asks the batch system for a job's state.
func batchState(ctx context.Context, kind, id string) string {
	sched, ok := schedulerOf(kind)
	if !ok {
		return "?"
	}
	state, _, reason, err := sched.Poll(ctx, id)
	if err != nil {
		return "? (" + err.Error() + ")"
	}
	if reason != "" && reason != "None" {
		state += " (" + reason + ")"
	}
	return state
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
