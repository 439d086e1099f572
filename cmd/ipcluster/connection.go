package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/ipcluster/ipcluster/internal/profile"
	"github.com/ipcluster/ipcluster/wire"
)

func newConnection(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "connection",
		Short: "The cluster's client credential, for clients on other machines",
		Args:  cobra.NoArgs,
	}
	var out, ssh string
	export := &cobra.Command{
		Use:   "export [-o FILE] [--ssh [user@]host]",
		Short: "Print or write the client connection file, for a client elsewhere",
		Long: `Export prints the running cluster's client connection file (or writes it,
mode 0600, with -o): what a client on another machine needs to reach the
controller. With --ssh it records the ssh server that machine should
tunnel through, so that there

  ipcluster console --file cluster.json

reaches the controller through ssh by itself. The file is the credential of
whoever holds it: anyone who has it can run code as you on the engines.
Keep it private (ipcluster refuses a connection file that others can read).`,
		Example: `  ipcluster connection export --ssh alice@login.cluster.org -o cluster.json   # on the login node
  scp login.cluster.org:cluster.json .                                        # on the laptop
  ipcluster console --file cluster.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := profile.Open(g.profile)
			if err != nil {
				return err
			}
			ci, err := wire.ReadConnectionFile(p.ClientFile())
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("no cluster is running for profile %q (%s does not exist)", p.Name, p.ClientFile())
			}
			if err != nil {
				return err
			}
			if ssh != "" {
				ci.SSHServer = ssh
			}
			if ci.Location == "" {
				ci.Location, _ = os.Hostname()
			}
			if out != "" && out != "-" {
				if err := wire.WriteConnectionFile(out, ci); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (mode 0600): the cluster's client credential; keep it private\n", out)
				return nil
			}
			data, err := json.MarshalIndent(ci, "", "  ")
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", data)
			return nil
		},
	}
	export.Flags().StringVarP(&out, "output", "o", "", "write the file here, mode 0600, instead of printing it")
	export.Flags().StringVar(&ssh, "ssh", "", "the ssh server, [user@]host[:port], that clients elsewhere tunnel through")
	cmd.AddCommand(export)
	return cmd
}
