package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ipcluster/ipcluster/internal/profile"
)

// globals are the flags every command takes.
type globals struct {
	profile   string
	ip        string
	location  string
	engineSSH string
	logLevel  string
}

func newRoot(opts options) *cobra.Command {
	g := &globals{}
	var n int
	root := &cobra.Command{
		Use:   "ipcluster",
		Short: "Parallel Go for workstations and HPC: a controller, engines and clients",
		Long: `ipcluster runs a controller and engines, and lets Go programs and the
command line send them work: registered Go functions, data in and out,
on all engines at once or load-balanced.

Files of a profile live in $IPCLUSTER_DIR/<profile> (default ~/.ipcluster/default):
the configuration ipcluster.toml, connection files, run state and logs.`,
		Example: `  ipcluster start -n 4          # controller + 4 engines on this machine
  ipcluster -n 4                # the same
  ipcluster start -n 4 --daemon # in the background
  ipcluster mpiexec -n 4        # controller + 4 engines as the ranks of an MPI job
  ipcluster engines             # list the engines
  ipcluster stop                # stop the cluster of the profile`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("n") {
				return cmd.Help()
			}
			return runStart(cmd, g, n, false)
		},
	}
	root.Flags().IntVarP(&n, "n", "n", 0, "start a cluster with this many engines (shorthand for start -n)")
	pf := root.PersistentFlags()
	pf.StringVar(&g.profile, "profile", os.Getenv("IPCLUSTER_PROFILE"), `profile name (default "default"; env IPCLUSTER_PROFILE)`)
	pf.StringVar(&g.ip, "ip", "", `interface the controller listens on (default 127.0.0.1; env IPCLUSTER_IP); "auto": the address of this host's name, else of its first interface up`)
	pf.StringVar(&g.location, "location", "", `host name engines and clients use for a controller listening on every interface (--ip 0.0.0.0; default this host's name)`)
	pf.StringVar(&g.engineSSH, "engine-ssh", "", `engines reach the controller through an ssh tunnel to [user@]host[:port] (compute nodes that cannot reach it directly)`)
	pf.StringVar(&g.logLevel, "log-level", "", "debug, info, warn or error (default info, to the log file; env IPCLUSTER_LOG_LEVEL)")
	root.RegisterFlagCompletionFunc("profile", completeProfiles)
	root.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions(
		[]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp))
	root.AddCommand(newStart(g), newMPIExec(g), newSLURM(g), newPBS(g), newTemplate(), newStatus(g), newStop(g), newPx(g), newConsole(g), newConnection(g), newEngines(g), newController(g), newEngine(g, opts.engineSetup), newVersion())
	return root
}

// completeProfiles lists the existing profiles.
func completeProfiles(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	base, err := profile.BaseDir()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	entries, _ := os.ReadDir(base)
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// load opens the profile and its configuration, with flags applied last.
func (g *globals) load() (*profile.Profile, *profile.Config, error) {
	p, err := profile.Open(g.profile)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := profile.Load(p)
	if err != nil {
		return nil, nil, err
	}
	if g.ip != "" {
		cfg.Controller.IP = g.ip
	}
	if cfg.Controller.IP == "auto" {
		cfg.Controller.IP, _ = batchAddress()
	}
	if g.location != "" {
		cfg.Controller.Location = g.location
	}
	if g.engineSSH != "" {
		cfg.Engines.SSH = g.engineSSH
	}
	if g.logLevel != "" {
		cfg.Log.Level = strings.ToLower(g.logLevel)
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	return p, cfg, nil
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// newLogger logs to a file in the profile's log directory at the
// configured level, and to stderr warnings and errors (or everything at
// the level given with --log-level).
func (g *globals) newLogger(p *profile.Profile, cfg *profile.Config, name string, stderr io.Writer) (*slog.Logger, func(), error) {
	level := parseLevel(cfg.Log.Level)
	if err := os.MkdirAll(p.LogDir(), 0o700); err != nil {
		return nil, nil, err
	}
	path := filepath.Join(p.LogDir(), name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the log file: %w", err)
	}
	if os.Getenv(daemonEnv) != "" {
		// A background child's stderr is this log file already.
		return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: level})), func() { f.Close() }, nil
	}
	termLevel := max(level, slog.LevelWarn)
	if g.logLevel != "" {
		termLevel = level
	}
	h := slog.NewMultiHandler(
		slog.NewTextHandler(f, &slog.HandlerOptions{Level: level}),
		slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: termLevel}),
	)
	return slog.New(h), func() { f.Close() }, nil
}
