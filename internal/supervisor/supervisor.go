// Package supervisor runs a cluster on this machine as `ipcluster start`
// does: a controller inside this process and engines as child processes,
// with the profile's lock, connection files and run state, and an orderly
// stop on a signal or at a client's request.
package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/ipcluster/ipcluster/controller"
	"github.com/ipcluster/ipcluster/controller/scheduler"
	"github.com/ipcluster/ipcluster/engine"
	"github.com/ipcluster/ipcluster/internal/profile"
	"github.com/ipcluster/ipcluster/launchers"
	"github.com/ipcluster/ipcluster/wire"
)

// Options configure a supervised cluster.
type Options struct {
	Profile *profile.Profile
	Config  *profile.Config
	// Engines is how many engine processes to start; 0 runs a controller alone.
	Engines int
	// EngineCommand runs one engine; default: this executable with "engine".
	EngineCommand []string
	Logger        *slog.Logger
	// StartTimeout bounds the wait for the engines to register (default 60s).
	StartTimeout time.Duration
	// Ready, if set, is called once the engines have registered.
	Ready func(Ready)
	// Daemon is recorded in the run state.
	Daemon bool
}

// Ready describes a cluster that has started.
type Ready struct {
	ClientFile string
	Endpoint   string // where clients connect
	Engines    int
	Elapsed    time.Duration // from Run to the last registration
}

// ControllerConfig turns the profile's configuration into a controller's.
func ControllerConfig(cfg *profile.Config, prof string, log *slog.Logger) (controller.Config, error) {
	policy, err := scheduler.ParsePolicy(cfg.Controller.Scheduler)
	if err != nil {
		return controller.Config{}, err
	}
	c := cfg.Controller
	return controller.Config{
		IP: c.IP, ClientPort: c.ClientPort, EnginePort: c.EnginePort,
		HeartbeatPeriod: c.HeartbeatPeriod, HeartbeatMisses: c.HeartbeatMisses,
		Scheduler: policy, PipelineDepth: c.PipelineDepth,
		ResultCache: c.ResultCache, ResultCacheBytes: int64(c.ResultCacheBytes), TaskHistory: c.TaskHistory,
		Profile: prof, Logger: log,
	}, nil
}

// Run starts the cluster and serves until ctx is done or a client shuts
// the cluster down. It fails at once, with a *profile.RunningError, if a
// cluster of the same profile is running.
func Run(ctx context.Context, opts Options) error {
	start := time.Now()
	p, cfg, log := opts.Profile, opts.Config, opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	if err := p.Ensure(); err != nil {
		return err
	}
	lock, err := p.Lock()
	if err != nil {
		return err
	}
	defer lock.Release()

	ccfg, err := ControllerConfig(cfg, p.Name, log)
	if err != nil {
		return err
	}
	ctrl, err := controller.New(ccfg)
	if err != nil {
		return err
	}
	clientInfo, engineInfo := ctrl.ClientInfo(), ctrl.EngineInfo()
	if err := wire.WriteConnectionFile(p.ClientFile(), clientInfo); err != nil {
		return err
	}
	if err := wire.WriteConnectionFile(p.EngineFile(), engineInfo); err != nil {
		return err
	}
	defer func() {
		os.Remove(p.ClientFile())
		os.Remove(p.EngineFile())
		profile.RemoveState(p.StatePath())
	}()
	state := &profile.State{
		Profile: p.Name, ClusterID: clientInfo.ClusterID, ControllerPID: os.Getpid(), SupervisorPID: os.Getpid(),
		Started: start, ClientEndpoint: clientInfo.Endpoint, EngineEndpoint: engineInfo.Endpoint, Daemon: opts.Daemon,
	}
	if err := profile.WriteState(p.StatePath(), state); err != nil {
		return err
	}

	ctrlCtx, stopCtrl := context.WithCancel(context.Background())
	defer stopCtrl()
	ctrlDone := make(chan error, 1)
	go func() { ctrlDone <- ctrl.Run(ctrlCtx) }()

	var launcher *launchers.Local
	exits := make(chan launchers.Process, max(opts.Engines, 1))
	if opts.Engines > 0 {
		conn, err := engineInfo.Marshal()
		if err != nil {
			return err
		}
		launcher = &launchers.Local{
			N: opts.Engines, Command: opts.EngineCommand, LogDir: p.LogDir(),
			Env: []string{
				engine.ConnectionEnv + "=" + string(conn),
				engine.JobEnv + "=" + clientInfo.ClusterID + "-local",
				"IPCLUSTER_LOG_LEVEL=" + cfg.Log.Level,
				"IPCLUSTER_PROFILE=" + p.Name,
			},
			OnExit: func(pr launchers.Process) { exits <- pr },
		}
		if err := launcher.Start(ctx); err != nil {
			stopCtrl()
			<-ctrlDone
			return err
		}
		defer launcher.Stop(2 * time.Second)
		var pids []int
		for _, pr := range launcher.Processes() {
			state.Engines = append(state.Engines, profile.Engine{PID: pr.PID, Log: pr.Log})
			pids = append(pids, pr.PID)
		}
		state.Jobs = []profile.Job{{ID: 1, Kind: "local", PIDs: pids}}
		if err := profile.WriteState(p.StatePath(), state); err != nil {
			return err
		}
		if err := waitEngines(ctx, ctrl, opts.Engines, opts.StartTimeout, exits, ctrlDone); err != nil {
			stopCtrl()
			return err
		}
	}
	if opts.Ready != nil {
		opts.Ready(Ready{ClientFile: p.ClientFile(), Endpoint: clientInfo.Endpoint, Engines: ctrl.EngineCount(), Elapsed: time.Since(start)})
	}
	log.Info("cluster ready", "engines", ctrl.EngineCount(), "elapsed", time.Since(start))

	select {
	case <-ctx.Done():
		log.Info("stopping the cluster", "reason", context.Cause(ctx))
		stopCtrl()
		err = <-ctrlDone
	case err = <-ctrlDone: // a client asked the controller to shut down
	}
	if launcher != nil {
		launcher.Stop(2 * time.Second)
	}
	return err
}

// waitEngines waits until n engines have registered, failing early if an
// engine process exits first or the controller stops.
func waitEngines(ctx context.Context, ctrl *controller.Controller, n int, timeout time.Duration,
	exits <-chan launchers.Process, ctrlDone <-chan error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ready := make(chan error, 1)
	go func() { ready <- ctrl.WaitEngines(ctx, n) }()
	for {
		select {
		case err := <-ready:
			if err != nil {
				return fmt.Errorf("engines did not register within %v: %w", timeout, err)
			}
			return nil
		case pr := <-exits:
			cancel()
			<-ready
			return fmt.Errorf("engine process %d exited before the cluster was ready: %v%s", pr.PID, exitReason(pr.Err), logTail(pr.Log))
		case err := <-ctrlDone:
			cancel()
			<-ready
			if err == nil {
				err = errors.New("stopped")
			}
			return fmt.Errorf("the controller stopped while starting: %w", err)
		}
	}
}

func exitReason(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// logTail returns the last lines of a log file, indented, for an error message.
func logTail(path string) string {
	if path == "" {
		return ""
	}
	data, err := os.ReadFile(path)
	if err != nil || len(bytes.TrimSpace(data)) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	lines = lines[max(0, len(lines)-10):]
	return fmt.Sprintf("\nlast lines of %s:\n    %s", path, strings.Join(lines, "\n    "))
}
