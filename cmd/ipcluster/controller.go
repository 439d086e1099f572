package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ipcluster/ipcluster/internal/supervisor"
)

func newController(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "controller",
		Short: "Run a controller alone, in the foreground",
		Long: `Controller runs one controller and writes the profile's connection files:
security/client.json for clients and security/engine.json for engines,
which can then be started anywhere with "ipcluster engine". Launchers use it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, cfg, err := g.load()
			if err != nil {
				return err
			}
			log, closeLog, err := g.newLogger(p, cfg, "controller.log", cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer closeLog()
			out := cmd.OutOrStdout()
			return supervisor.Run(cmd.Context(), supervisor.Options{
				Profile: p, Config: cfg, Logger: log,
				Ready: func(r supervisor.Ready) {
					fmt.Fprintf(out, "ipcluster: controller ready at %s (profile %q)\n", r.Endpoint, p.Name)
					fmt.Fprintf(out, "  client connection file: %s\n  engine connection file: %s\n", r.ClientFile, p.EngineFile())
				},
			})
		},
	}
}
