package main

import (
	"errors"
	"log/slog"
	"os"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ipcluster/ipcluster/engine"
)

func newEngine(g *globals, setup func(*engine.Engine) error) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "engine",
		Short: "Run one engine, in the foreground",
		Long: `Engine runs one engine. It finds the controller through, in order:
--file, $IPCLUSTER_CONNECTION (the connection JSON, set by launchers),
$IPCLUSTER_CONNECTION_FILE, or the profile's security/engine.json.
It exits when the controller tells it to, or when the controller has
been silent for [engines] heartbeat_timeout.

Started as an MPI rank (by ipcluster mpiexec, srun, ...) it registers
with its rank and size; in a build with MPI (make build, which uses the
build tag mpi when pkg-config finds MPI) it also initialises MPI, so the
functions it runs can use package mpi.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, cfg, err := g.load()
			if err != nil {
				return err
			}
			// Log to a copy of stderr made before output capture points fd 2
			// at the running task's client.
			logFD, err := syscall.Dup(2)
			if err != nil {
				return err
			}
			logFile := os.NewFile(uintptr(logFD), "log")
			defer logFile.Close()
			log := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: parseLevel(cfg.Log.Level)}))
			opts := engine.Options{
				ConnectionFile: file, CaptureOutput: cfg.Engines.CaptureOutput,
				Timeout: cfg.Engines.HeartbeatTimeout, Logger: log,
			}
			if file == "" && os.Getenv(engine.ConnectionEnv) == "" && os.Getenv(engine.ConnectionFileEnv) == "" {
				opts.ConnectionFile = p.EngineFile()
			}
			err = engine.Serve(cmd.Context(), opts, setup)
			if errors.Is(err, engine.ErrControllerLost) {
				log.Error("engine exiting", "err", err)
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "engine connection file")
	return cmd
}
