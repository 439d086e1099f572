// Package supervisor runs a cluster on this machine as `ipcluster start`
// does: a controller inside this process and engines as child processes,
// with the profile's lock, connection files and run state, and an orderly
// stop on a signal or at a client's request.
package supervisor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/ipcluster/ipcluster/client"
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
	// Engines is how many engines to start; 0 runs a controller alone.
	Engines int
	// EngineCommand runs one engine; default: this executable with "engine".
	EngineCommand []string
	// Launch, if set, makes the launcher of the engines, given the
	// environment that tells them where the controller is. By default they
	// are local processes running EngineCommand.
	Launch func(env []string) launchers.Launcher
	// Kind names the launcher in the run state: "local" (default), "mpiexec"...
	Kind string
	// Progress, if set, is called while engines register, about every
	// 200 ms once a second has passed, with how many have.
	Progress func(have, want int)
	Logger   *slog.Logger
	// StartTimeout bounds the wait for the engines to register (default 60s).
	StartTimeout time.Duration
	// Ready, if set, is called once the engines have registered.
	Ready func(Ready)
	// Daemon is recorded in the run state.
	Daemon bool
	// InBatchJob records in the run state the batch job this process runs
	// in, as the job that holds the controller (ipcluster slurm
	// --controller-in-job), so that stop cancels it.
	InBatchJob bool
}

// Ready describes a cluster, or a job joining one, that has started.
type Ready struct {
	ClientFile string
	Endpoint   string        // where clients connect
	Engines    int           // of the cluster; for Join, of the job
	Job        int           // the controller's number for the job started (0 if none)
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
		Location: c.Location, Profile: prof, Logger: log,
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
	if cfg.Engines.SSH != "" { // engines tunnel to the controller through it
		ei := *engineInfo
		ei.SSHServer = cfg.Engines.SSH
		engineInfo = &ei
	}
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
	state.Host, _ = os.Hostname()
	if opts.InBatchJob {
		state.Batch, state.BatchID = launchers.BatchJobID()
	}
	if err := profile.WriteState(p.StatePath(), state); err != nil {
		return err
	}

	ctrlCtx, stopCtrl := context.WithCancel(context.Background())
	defer stopCtrl()
	ctrlDone := make(chan error, 1)
	go func() { ctrlDone <- ctrl.Run(ctrlCtx) }()

	var launcher launchers.Launcher
	ready := Ready{ClientFile: p.ClientFile(), Endpoint: clientInfo.Endpoint}
	if opts.Engines > 0 {
		kind := cmp.Or(opts.Kind, "local")
		key := fmt.Sprintf("%s-%s-%d", clientInfo.ClusterID, kind, os.Getpid())
		env, err := engineEnv(engineInfo, key, p, cfg)
		if err != nil {
			return err
		}
		if opts.Launch != nil {
			launcher = opts.Launch(env)
		} else {
			launcher = &launchers.Local{N: opts.Engines, Command: opts.EngineCommand, LogDir: p.LogDir(), Env: env}
		}
		if err := launcher.Start(ctx); err != nil {
			stopCtrl()
			<-ctrlDone
			return err
		}
		defer launcher.Stop(2 * time.Second)
		var pids []int
		batch := ""
		for _, pr := range launcher.Processes() {
			if pr.PID > 0 {
				state.Engines = append(state.Engines, profile.Engine{PID: pr.PID, Log: pr.Log})
				pids = append(pids, pr.PID)
			}
			batch = cmp.Or(batch, pr.Batch)
		}
		// The first job to register is the controller's job 1.
		state.Jobs = []profile.Job{{ID: 1, Key: key, Kind: kind, N: opts.Engines, PIDs: pids, BatchID: batch,
			Owner: os.Getpid(), Started: start}}
		if err := profile.WriteState(p.StatePath(), state); err != nil {
			return err
		}
		err = waitJob(ctx, launcher, opts.Engines, opts.StartTimeout, opts.Progress,
			func(ctx context.Context) error { return ctrl.WaitEngines(ctx, opts.Engines) }, ctrl.EngineCount, ctrlDone)
		if err != nil {
			stopCtrl()
			return err
		}
		ready.Job = 1
	}
	ready.Engines, ready.Elapsed = ctrl.EngineCount(), time.Since(start)
	if opts.Ready != nil {
		opts.Ready(ready)
	}
	log.Info("cluster ready", "engines", ctrl.EngineCount(), "elapsed", time.Since(start))

	select {
	case <-ctx.Done():
		log.Info("stopping the cluster", "reason", context.Cause(ctx))
		stopCtrl()
		err = <-ctrlDone
	case err = <-ctrlDone: // a client asked the controller to shut down
	}
	log.Info("controller stopped")
	if launcher != nil {
		launcher.Stop(2 * time.Second)
		log.Info("engine processes ended")
	}
	return err
}

// engineEnv is the environment that tells engines where the controller
// is and which job they belong to.
func engineEnv(engineInfo *wire.ConnectionInfo, jobKey string, p *profile.Profile, cfg *profile.Config) ([]string, error) {
	conn, err := engineInfo.Marshal()
	if err != nil {
		return nil, err
	}
	return []string{
		engine.ConnectionEnv + "=" + string(conn),
		engine.JobEnv + "=" + jobKey,
		"IPCLUSTER_LOG_LEVEL=" + cfg.Log.Level,
		"IPCLUSTER_PROFILE=" + p.Name,
	}, nil
}

// waitJob waits, with wait, until a job's n engines have registered. It
// fails early, with what the engines printed, if the launcher's processes
// exit first, and if the controller stops (stopped, if not nil). While it
// waits it reports progress, with have's count, once a second has passed.
func waitJob(ctx context.Context, l launchers.Launcher, n int, timeout time.Duration, progress func(have, want int),
	wait func(context.Context) error, have func() int, stopped <-chan error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ready := make(chan error, 1)
	go func() { ready <- wait(ctx) }()
	started := time.Now()
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	var tick <-chan time.Time
	if progress != nil {
		tick = ticker.C
	}
	shown := false
	for {
		select {
		case err := <-ready:
			if shown {
				progress(have(), n)
			}
			return waited(err, n, have(), timeout)
		case <-tick:
			if time.Since(started) >= time.Second {
				shown = true
				progress(have(), n)
			}
		case <-l.FirstExit():
			cancel()
			<-ready
			return exited(l, n, have())
		case err := <-stopped:
			cancel()
			<-ready
			return controllerStopped(err)
		}
	}
}

func waited(err error, n, have int, timeout time.Duration) error {
	if err != nil {
		return fmt.Errorf("%d of %d engines registered within %v: %w", have, n, timeout, err)
	}
	return nil
}

func controllerStopped(err error) error {
	if err == nil {
		err = errors.New("stopped")
	}
	return fmt.Errorf("the controller stopped while engines were starting: %w", err)
}

// exited describes a launcher whose processes ended before its engines
// registered.
func exited(l launchers.Launcher, n, have int) error {
	switch l := l.(type) {
	case *launchers.MPIExec:
		return fmt.Errorf("the MPI job ended with %d of %d ranks registered: %s", have, n, l.FailureReport(nil))
	case *launchers.Batch:
		return fmt.Errorf("the batch job ended with %d of %d engines registered: %s", have, n, l.FailureReport())
	}
	for i, pr := range l.Processes() {
		if pr.Exited {
			return fmt.Errorf("engine process %d exited before the cluster was ready: %v%s", pr.PID, exitReason(pr.Err), indent(pr.Log, l.Output(i)))
		}
	}
	return fmt.Errorf("the engines exited with %d of %d registered", have, n)
}

func exitReason(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// indent presents the last lines of a log for an error message.
func indent(path, lines string) string {
	if strings.TrimSpace(lines) == "" {
		return ""
	}
	return fmt.Sprintf("\nlast lines of %s:\n    %s", path, strings.ReplaceAll(lines, "\n", "\n    "))
}

// JoinOptions configure a job of engines that joins a running cluster.
type JoinOptions struct {
	Profile *profile.Profile
	Config  *profile.Config
	Engines int                                   // how many engines the job has
	Kind    string                                // the launcher, for the job's record: "mpiexec", ...
	Launch  func(env []string) launchers.Launcher // makes the launcher, given the engines' environment
	Logger  *slog.Logger
	// StartTimeout bounds the wait for the engines to register (default 60s).
	StartTimeout time.Duration
	Ready        func(Ready)
	Progress     func(have, want int)
}

// Join starts a job of engines for the profile's running controller, waits
// until they have registered, and serves until the job's processes exit
// (the engines were stopped, by ipcluster stop --job or with the cluster)
// or ctx ends, which stops the job's engines and processes. The job is
// recorded in the profile's jobs directory while it runs.
func Join(ctx context.Context, opts JoinOptions) error {
	start := time.Now()
	p, log := opts.Profile, opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	engineInfo, err := wire.ReadConnectionFile(p.EngineFile())
	if err != nil {
		return fmt.Errorf("joining the cluster of profile %q: %w", p.Name, err)
	}
	if opts.Config != nil && opts.Config.Engines.SSH != "" {
		engineInfo.SSHServer = opts.Config.Engines.SSH // this job's engines tunnel
	}
	c, err := client.Connect(ctx, client.Options{Profile: p.Name, Logger: log})
	if err != nil {
		return err
	}
	defer c.Close()
	kind := cmp.Or(opts.Kind, "local")
	key := fmt.Sprintf("%s-%s-%d", engineInfo.ClusterID, kind, os.Getpid())
	env, err := engineEnv(engineInfo, key, p, opts.Config)
	if err != nil {
		return err
	}
	l := opts.Launch(env)
	if err := l.Start(ctx); err != nil {
		return err
	}
	defer l.Stop(2 * time.Second)
	rec := &profile.Job{Key: key, Kind: kind, N: opts.Engines, Owner: os.Getpid(), Started: start}
	for _, pr := range l.Processes() {
		if pr.PID > 0 {
			rec.PIDs = append(rec.PIDs, pr.PID)
		}
		rec.BatchID = cmp.Or(rec.BatchID, pr.Batch)
		rec.Log = cmp.Or(rec.Log, pr.Log)
	}
	if err := p.WriteJob(rec); err != nil {
		return err
	}
	defer p.RemoveJob(key)

	var job client.JobInfo
	registered := func() int {
		for _, j := range c.Jobs() {
			if j.Key == key {
				return len(j.Engines)
			}
		}
		return 0
	}
	err = waitJob(ctx, l, opts.Engines, opts.StartTimeout, opts.Progress, func(ctx context.Context) (err error) {
		job, err = c.WaitForJob(ctx, key, opts.Engines)
		return err
	}, registered, nil)
	if err != nil {
		return err
	}
	rec.ID = job.ID
	if err := p.WriteJob(rec); err != nil {
		return err
	}
	log.Info("job ready", "job", job.ID, "engines", len(job.Engines), "elapsed", time.Since(start))
	if opts.Ready != nil {
		opts.Ready(Ready{ClientFile: p.ClientFile(), Endpoint: c.Endpoint(), Engines: len(job.Engines), Job: job.ID, Elapsed: time.Since(start)})
	}
	select {
	case <-l.Done():
		// The engines were shut down, or failed.
		for i, pr := range l.Processes() {
			if pr.Err == nil {
				continue
			}
			switch l := l.(type) {
			case *launchers.MPIExec:
				return fmt.Errorf("job %d ended: %s", job.ID, l.FailureReport(nil))
			case *launchers.Batch:
				return fmt.Errorf("job %d ended: %s", job.ID, l.FailureReport())
			}
			return fmt.Errorf("job %d ended: %v%s", job.ID, exitReason(pr.Err), indent(pr.Log, l.Output(i)))
		}
		log.Info("job ended", "job", job.ID)
		return nil
	case <-ctx.Done():
		log.Info("stopping the job", "job", job.ID, "reason", context.Cause(ctx))
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Job(job.ID).Stop(stopCtx); err != nil {
			log.Warn("the job's engines did not all stop", "job", job.ID, "err", err)
		}
		select {
		case <-l.Done():
		case <-stopCtx.Done():
		}
		return nil
	}
}
