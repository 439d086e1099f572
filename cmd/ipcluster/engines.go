package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipcluster/ipcluster/client"
)

func newEngines(g *globals) *cobra.Command {
	var asJSON bool
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "engines",
		Short: "List the engines of the running cluster",
		Long: `Engines asks the controller for its engines: id, host, process id, state,
tasks queued and running, time since the last heartbeat, and the job and
MPI rank each belongs to.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			c, err := client.Connect(ctx, cf.options(g))
			if err != nil {
				return err
			}
			defer c.Close()
			engines, err := c.Engines(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(engines)
			}
			if len(engines) == 0 {
				fmt.Fprintln(out, "no engines are registered")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tHOST\tPID\tSTATE\tQUEUED\tRUNNING\tHEARTBEAT\tJOB\tRANK")
			now := time.Now()
			for _, e := range engines {
				rank := "-"
				if e.Size > 0 {
					rank = fmt.Sprintf("%d/%d", e.Rank, e.Size)
				}
				job := "-"
				if e.Job > 0 {
					job = fmt.Sprint(e.Job)
				}
				fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\n", e.ID, e.Host, e.PID, e.State, e.Queued,
					shortID(e.Running), ago(now, e.LastHeartbeat), job, rank)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cf.add(cmd, "file", "f")
	return cmd
}

// shortID abbreviates a message id "<session>-<n>" for a table.
func shortID(id string) string {
	if id == "" {
		return "-"
	}
	if i := strings.LastIndexByte(id, '-'); i > 8 {
		return id[:8] + "…" + id[i:]
	}
	return id
}

func ago(now time.Time, ns int64) string {
	if ns == 0 {
		return "-"
	}
	d := now.Sub(time.Unix(0, ns))
	return fmt.Sprintf("%.1fs ago", max(0, d.Seconds()))
}
