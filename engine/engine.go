// Package engine runs work sent by a controller: registered Go functions,
// and data in and out of a per-engine namespace.
//
// An engine is the stock `ipcluster engine` process or any Go program that
// links this package. It holds one connection to the controller, which two
// goroutines take turns to serve: the one that receives work runs it, one
// item at a time in arrival order, while the other keeps heartbeats,
// control messages (abort, interrupt, shutdown) and output flowing. So a
// short task costs no hand-over between goroutines, a busy engine is never
// taken for a dead one, and an interrupt reaches a running task at once.
//
//	eng, err := engine.New(engine.Options{})
//	eng.Register("step", func(ctx context.Context, n int) (float64, error) { ... })
//	err = eng.Run(ctx)
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipcluster/ipcluster/engine/cell"
	"github.com/ipcluster/ipcluster/internal/courier"
	"github.com/ipcluster/ipcluster/internal/tunnel"
	"github.com/ipcluster/ipcluster/mpi"
	"github.com/ipcluster/ipcluster/transport"
	"github.com/ipcluster/ipcluster/transport/zmqnet"
	"github.com/ipcluster/ipcluster/wire"
)

// Environment variables an engine reads.
const (
	// ConnectionEnv holds the engine's connection info as JSON; launchers
	// use it so that engines need no shared filesystem.
	ConnectionEnv = "IPCLUSTER_CONNECTION"
	// ConnectionFileEnv names a connection file to read instead.
	ConnectionFileEnv = "IPCLUSTER_CONNECTION_FILE"
	// JobEnv holds the launcher's key of the job the engine belongs to.
	JobEnv = "IPCLUSTER_JOB"
)

// ErrControllerLost is returned by Run when the controller stops answering.
var ErrControllerLost = errors.New("lost the controller")

// Options configure an engine. The zero value of a field means its default.
type Options struct {
	// Connection is the engine credential. If nil, it is read from
	// $IPCLUSTER_CONNECTION, or else from ConnectionFile or
	// $IPCLUSTER_CONNECTION_FILE.
	Connection     *wire.ConnectionInfo
	ConnectionFile string

	// CaptureOutput points the process's stdout and stderr at the running
	// task's client. Only one engine per process can capture.
	CaptureOutput bool

	// Timeout is how long the engine waits for the controller: to answer
	// its registration, and between messages afterwards. Default 10s.
	Timeout time.Duration
	// StopGrace is how long Run waits, when it stops, for a running task
	// to end after its context is cancelled. Default 5s.
	StopGrace time.Duration

	// What the engine says of itself. Defaults: $IPCLUSTER_JOB; the rank
	// and size of MPI_COMM_WORLD once MPI is initialised in a build with
	// MPI, else the launcher's variables (mpi.FromLauncher).
	JobKey     string
	Rank, Size int
	Cores      int

	// SSH tunes the ssh tunnel to the controller that the engine opens
	// when its connection info names an ssh server ("ssh"), as
	// `ipcluster ... --engine-ssh` does for compute nodes that cannot
	// reach the controller directly. The zero value runs the system's ssh
	// with the user's configuration.
	SSH SSHOptions

	Logger  *slog.Logger
	Network transport.Network // nil means ZeroMQ, owned by the engine
}

// SSHOptions tune an engine's ssh tunnel to the controller.
type SSHOptions struct {
	Builtin      bool     // speak ssh in Go (agent, ~/.ssh keys) rather than running ssh
	IdentityFile string   // a private key to offer
	KnownHosts   []string // known_hosts files (default ~/.ssh/known_hosts)
	Args         []string // extra arguments for the ssh command
}

// Engine runs work for a controller. Make one with New.
type Engine struct {
	opts Options
	log  *slog.Logger

	mu    sync.RWMutex
	funcs map[string]*function

	id             atomic.Int64
	registered     chan struct{}
	registeredOnce sync.Once

	queue   workQueue
	courier *courier.Courier // sends everything after registration
	post    func(...*wire.Message)
	cap     *capture

	curMu sync.Mutex
	cur   context.CancelCauseFunc // cancels the running task, curID
	curID string
	// early is an interrupt that came for a task the controller counts as
	// running but this engine has not started yet: the head of its queue.
	// The task then ends with earlyCause as soon as it starts.
	early      string
	earlyCause error

	ns    *cell.Namespace // used by the goroutine running a task
	cells int             // cells run, for naming them
	job   atomic.Int64    // the controller's number for this engine's job

	background *background // set by Start

	steer      steering
	steerNS    *cell.Namespace // of cells run at steering points, by the program's goroutine
	steerCells int
	xmu        sync.RWMutex
	exposed    map[string]*exposedVar
	checkpoint func(ctx context.Context, dir string) error
}

// New returns an engine with the builtin functions registered: echo,
// noop, sleep, hostname, pid, getenv, sh, and mpi.info, mpi.barrier,
// mpi.allreduce and mpi.bcast (for engines that run as MPI ranks).
func New(opts Options) (*Engine, error) {
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("engine: timeout %v must be positive", opts.Timeout)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Cores == 0 {
		opts.Cores = runtime.NumCPU()
	}
	if opts.JobKey == "" {
		opts.JobKey = os.Getenv(JobEnv)
	}
	if opts.StopGrace == 0 {
		opts.StopGrace = 5 * time.Second
	}
	if opts.Size == 0 {
		if mpi.Enabled && mpi.Initialized() {
			opts.Rank, opts.Size = mpi.World().Rank(), mpi.World().Size()
		} else if rank, size, ok := mpi.FromLauncher(); ok {
			opts.Rank, opts.Size = rank, size
		}
	}
	e := &Engine{opts: opts, log: opts.Logger, funcs: make(map[string]*function),
		registered: make(chan struct{})}
	e.ns = cell.NewNamespace(e.cellBuiltins())
	e.steerNS = cell.NewNamespace(e.cellBuiltins())
	e.exposed = make(map[string]*exposedVar)
	e.steer.init()
	e.id.Store(wire.NoEngine)
	for name, fn := range builtins() {
		if err := e.Register(name, fn); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Register makes fn callable by name. fn is an ordinary Go function: an
// optional context.Context first (cancelled when the task is interrupted
// or times out), then any parameters, which are decoded from the caller's
// arguments, and as results nothing, an error, a value, or a value and an
// error. Numeric slice parameters receive arrays without copying; a
// parameter of type wire.Value receives the argument undecoded.
func (e *Engine) Register(name string, fn any) error {
	f, err := newFunction(name, fn)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.funcs[name]; ok {
		return fmt.Errorf("engine: function %q is already registered", name)
	}
	e.funcs[name] = f
	return nil
}

// Functions returns the names of the registered functions, sorted.
func (e *Engine) Functions() []string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return slices.Sorted(maps.Keys(e.funcs))
}

// ID returns the engine id the controller assigned, or -1 before registration.
func (e *Engine) ID() int { return int(e.id.Load()) }

// Registered is closed once the controller has accepted the engine.
func (e *Engine) Registered() <-chan struct{} { return e.registered }

// connection finds the engine's credential.
func (e *Engine) connection() (*wire.ConnectionInfo, error) {
	if e.opts.Connection != nil {
		return e.opts.Connection, e.opts.Connection.Check()
	}
	if data := os.Getenv(ConnectionEnv); data != "" {
		ci, err := wire.ParseConnection([]byte(data))
		if err != nil {
			return nil, fmt.Errorf("engine: $%s: %w", ConnectionEnv, err)
		}
		return ci, nil
	}
	path := e.opts.ConnectionFile
	if path == "" {
		path = os.Getenv(ConnectionFileEnv)
	}
	if path == "" {
		return nil, fmt.Errorf("engine: no connection info: set $%s or $%s, or pass a connection file", ConnectionEnv, ConnectionFileEnv)
	}
	return wire.ReadConnectionFile(path)
}

// Run connects to the controller, registers, and serves until ctx is done,
// the controller asks the engine to shut down (Run returns nil) or stops
// answering (ErrControllerLost).
func (e *Engine) Run(ctx context.Context) (err error) {
	ci, err := e.connection()
	if err != nil {
		return err
	}
	if ci.Role != wire.RoleEngine {
		return fmt.Errorf("engine: the connection info is for a %s, not an engine", ci.Role)
	}
	if ci.SSHServer != "" {
		tun, tci, err := e.tunnel(ctx, ci)
		if err != nil {
			return err
		}
		defer tun.Close()
		ci = tci
	}
	netw, own := e.opts.Network, false
	if netw == nil {
		n, err := zmqnet.New(zmqnet.Options{})
		if err != nil {
			return err
		}
		netw, own = n, true
	}
	// One socket, whose routing id is the session id: the goroutine that
	// leads its poller receives, and any goroutine sends (through the
	// courier), at once.
	session := wire.NewSession()
	sec := &transport.ClientSecurity{ServerKey: ci.ControllerKey, Public: ci.Public, Secret: ci.Secret}
	release := func() {
		if own {
			netw.Close()
		}
	}
	sock, err := netw.Dial(ci.Endpoint, []byte(session.ID()), sec)
	if err != nil {
		release()
		return err
	}
	poller, err := netw.NewPoller(sock)
	if err != nil {
		sock.Close()
		release()
		return err
	}
	defer func() {
		poller.Close()
		sock.Close()
		release()
	}()
	e.courier = courier.New(sock, session, wire.NewSigner(ci.SigningKey()), poller.Wake, e.log)
	e.post = e.courier.Send
	if e.opts.CaptureOutput {
		if e.cap, err = startCapture(e.emitOutput); err != nil {
			return err
		}
		defer e.cap.stop()
	}
	io := &ioLoop{e: e, ci: ci, sock: sock, poller: poller, session: session, signer: wire.NewSigner(ci.SigningKey())}
	return io.run(ctx)
}

// tunnel forwards a local port to the controller through ci's ssh
// server, and returns ci pointing at it.
func (e *Engine) tunnel(ctx context.Context, ci *wire.ConnectionInfo) (*tunnel.Tunnel, *wire.ConnectionInfo, error) {
	o := e.opts.SSH
	mode := tunnel.Auto
	if o.Builtin {
		mode = tunnel.Builtin
	}
	tun, local, err := tunnel.OpenEndpoint(ctx, tunnel.Options{Server: ci.SSHServer, Mode: mode, IdentityFile: o.IdentityFile,
		KnownHosts: o.KnownHosts, SSHArgs: o.Args, Logger: e.log}, ci.Endpoint)
	if err != nil {
		return nil, nil, fmt.Errorf("engine: %w", err)
	}
	tci := *ci
	tci.Endpoint = local
	return tun, &tci, nil
}

// send sends a message to the controller, from any goroutine.
func (e *Engine) send(m *wire.Message) { e.post(m) }

// header starts a message from this engine.
func (e *Engine) header(t wire.Type, parent string) wire.Header {
	return wire.Header{Type: t, Parent: parent, Engine: e.ID()}
}

func (e *Engine) emitOutput(task, stream string, data []byte) {
	content, err := wire.EncodeContent(wire.OutputChunk{Stream: stream, Data: data})
	if err != nil {
		return
	}
	e.send(&wire.Message{Header: e.header(wire.Output, task), Content: content})
}

// ioLoop serves the connection. Two goroutines take turns at it (see
// transport.Poller): the leader waits for messages and handles them, and
// runs the work they bring itself, having let go of the lead, so that a
// short task costs no hand-over between goroutines; the other follows, and
// takes over as soon as anything arrives while the task runs, so that a
// busy engine still answers at once. The fields below ctx are the
// leader's.
type ioLoop struct {
	e       *Engine
	ci      *wire.ConnectionInfo
	sock    transport.Socket
	poller  transport.Poller
	session *wire.Session
	signer  *wire.Signer
	ctx     context.Context // Run's

	ended   chan struct{} // closed when the loop ends, err set
	endOnce sync.Once
	err     error // why it ended: errShutdown for a requested shutdown

	alarm     *time.Timer // wakes the loop when it has something to do
	alarmAt   time.Time
	period    time.Duration
	lastHeard time.Time
	nextBeat  time.Time
	stop      error // set when the loop must end
}

var errShutdown = errors.New("shutdown requested")

func (l *ioLoop) run(ctx context.Context) error {
	e := l.e
	l.ctx = ctx
	l.ended = make(chan struct{})
	stopWake := context.AfterFunc(ctx, l.poller.Wake)
	defer stopWake()
	info := wire.EngineInfo{UUID: l.session.ID(), PID: os.Getpid(), Cores: e.opts.Cores,
		JobKey: e.opts.JobKey, Rank: e.opts.Rank, Size: e.opts.Size, Functions: e.Functions()}
	info.Host, _ = os.Hostname()
	content, err := wire.EncodeContent(info)
	if err != nil {
		return err
	}
	l.lastHeard = time.Now()
	reg := &wire.Message{Header: e.header(wire.Register, ""), Content: content}
	reg.ID = l.session.NewID()
	l.session.Stamp(&reg.Header)
	if err := l.sock.Send(l.signer.Seal(reg)); err != nil {
		return fmt.Errorf("engine: registering: %w", err)
	}

	// Work left from an earlier Run belongs to another session of the
	// controller: it must not run, nor be answered, here.
	e.queue.reset()
	e.curMu.Lock()
	e.early, e.earlyCause = "", nil
	e.curMu.Unlock()

	e.steer.open(ctx)
	l.alarm = time.AfterFunc(time.Hour, l.poller.Wake)
	defer l.alarm.Stop()
	l.setAlarm()
	// Stopping the execution cancels the running task with errStopping.
	execCtx, stopExec := context.WithCancelCause(context.Background())
	defer stopExec(nil)
	var servers sync.WaitGroup
	for range 2 {
		servers.Go(func() { l.serve(execCtx, &servers) })
	}
	<-l.ended
	// Queued work is not started; the controller learns of it from the
	// goodbye. The running task ends, and its reply goes out. A program
	// held at a steering point runs on.
	e.queue.close()
	e.steer.close()
	stopExec(stoppingError(ctx))
	stuck := e.waitExecutor(&servers)
	if !errors.Is(l.err, errShutdown) {
		return l.err
	}
	if l.period > 0 {
		e.courier.Flush(&wire.Message{Header: e.header(wire.Unregister, "")})
	} else {
		e.courier.Flush()
	}
	e.log.Info("engine stopped", "engine", e.ID())
	return stuck
}

// serve is the body of the goroutines that take turns at the connection.
func (l *ioLoop) serve(execCtx context.Context, servers *sync.WaitGroup) {
	e := l.e
	replace := func() { servers.Go(func() { l.serve(execCtx, servers) }) }
	// Work is taken by the leader that received it, or by the goroutine
	// already running work; one that replaces a lost goroutine may find
	// some waiting.
	m := e.queue.take()
	for {
		e.work(execCtx, m, replace)
		if l.isEnded() {
			return
		}
		if !l.poller.TryLead() {
			if err := l.poller.Follow(); err != nil {
				l.end(fmt.Errorf("engine: %w", err))
				return
			}
		}
		if m = l.lead(); m == nil {
			return
		}
	}
}

// work runs m, if not nil, and then what else is queued, until the queue
// is empty. A task that ends its goroutine with runtime.Goexit fails, and
// replace is called for a new goroutine to take this one's place.
func (e *Engine) work(ctx context.Context, m *wire.Message, replace func()) {
	defer func() {
		if m == nil {
			return
		}
		e.queue.done()
		h := e.header(wire.TaskReply, m.ID)
		h.Status = wire.StatusError
		now := time.Now().UnixNano()
		h.Started, h.Completed = now, now
		content, _ := wire.EncodeContent(wire.ErrorInfo{Type: "Panic", Message: "the task called runtime.Goexit"})
		e.send(&wire.Message{Header: h, Content: content})
		replace()
	}()
	for m != nil {
		e.send(e.run(ctx, m))
		m = e.queue.next()
	}
}

// lead is the leader's loop: it handles what comes until it has work to
// run, which it returns having let go of the lead, or until the loop ends
// (nil).
func (l *ioLoop) lead() *wire.Message {
	e := l.e
	for {
		if l.isEnded() {
			l.resign()
			return nil
		}
		now := time.Now()
		if l.ctx.Err() != nil && l.stop == nil {
			l.stop = errShutdown
		}
		if l.stop == nil && !now.Before(l.lastHeard.Add(e.opts.Timeout)) {
			if l.period == 0 {
				l.stop = fmt.Errorf("engine: %w: no answer to registration from %s within %v (is the controller running?)",
					ErrControllerLost, l.ci.Endpoint, e.opts.Timeout)
			} else {
				l.stop = fmt.Errorf("engine: %w: nothing heard from %s for %v", ErrControllerLost, l.ci.Endpoint, e.opts.Timeout)
			}
		}
		if l.stop != nil {
			l.end(l.stop)
			l.resign()
			return nil
		}
		if l.period > 0 && !now.Before(l.nextBeat) {
			l.heartbeat()
		}
		l.setAlarm()
		if _, err := l.poller.Wait(-1); err != nil {
			l.stop = fmt.Errorf("engine: %w", err)
			continue
		}
		for l.stop == nil {
			frames, err := l.sock.Recv()
			if errors.Is(err, transport.ErrAgain) {
				break
			}
			if err != nil {
				l.stop = fmt.Errorf("engine: %w", err)
				break
			}
			l.handle(frames)
		}
		e.courier.Flush()
		if l.stop == nil && l.period > 0 {
			if m := e.queue.take(); m != nil {
				l.poller.Unlead()
				return m
			}
		}
	}
}

// setAlarm wakes the loop when it next has something to do: send a
// heartbeat, or give up on a silent controller.
func (l *ioLoop) setAlarm() {
	at := l.lastHeard.Add(l.e.opts.Timeout)
	if l.period > 0 && l.nextBeat.Before(at) {
		at = l.nextBeat
	}
	if !at.Equal(l.alarmAt) {
		l.alarmAt = at
		l.alarm.Reset(max(time.Until(at), time.Millisecond))
	}
}

// end ends the loop with err (the first call counts).
func (l *ioLoop) end(err error) {
	l.endOnce.Do(func() {
		l.err = err
		close(l.ended)
	})
}

func (l *ioLoop) isEnded() bool {
	select {
	case <-l.ended:
		return true
	default:
		return false
	}
}

// resign lets go of the lead as the loop ends, and wakes the other
// goroutine to see that it has.
func (l *ioLoop) resign() {
	l.poller.Unlead()
	l.poller.Wake()
}

// stoppingError says why a running task ends as its engine stops: with
// the cause of Run's context (a signal, for a process), and, for a signal
// inside a batch job, that the job may have been cancelled or timed out.
func stoppingError(ctx context.Context) error {
	cause := context.Cause(ctx)
	if cause == nil || cause == context.Canceled { // a signal's cause is also context.Canceled, by errors.Is
		return errStopping
	}
	msg := errStopping.msg + " (" + cause.Error() + ")"
	if id := os.Getenv("SLURM_JOB_ID"); id != "" && strings.Contains(cause.Error(), "signal") {
		msg += fmt.Sprintf("; it runs in SLURM job %s, which may have been cancelled or reached its time limit", id)
	} else if id := os.Getenv("PBS_JOBID"); id != "" && strings.Contains(cause.Error(), "signal") {
		msg += fmt.Sprintf("; it runs in PBS job %s, which may have been deleted or reached its walltime", id)
	}
	return &taskError{kind: errStopping.kind, msg: msg}
}

// waitExecutor waits for the executor to end once its context is
// cancelled. A task that ignores its context, such as one blocked in an
// MPI call that other ranks never join, is given StopGrace and then left
// behind: the process must exit to be rid of it.
func (e *Engine) waitExecutor(wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(e.opts.StopGrace):
		e.log.Error("a task ignores its cancellation", "task", e.currentID(), "grace", e.opts.StopGrace)
		return &StuckError{Task: e.currentID(), Grace: e.opts.StopGrace}
	}
}

// StuckError is returned by Run when the running task did not end within
// Options.StopGrace of being cancelled. Its goroutine still runs; the
// process should exit (without MPI_Finalize, which would wait for it).
type StuckError struct {
	Task  string
	Grace time.Duration
}

func (e *StuckError) Error() string {
	return fmt.Sprintf("engine: task %s did not end within %v of being cancelled "+
		"(blocked in a call that ignores its context, such as MPI without one?)", e.Task, e.Grace)
}

// heartbeat is due: it tells the controller that the engine lives, unless
// something else did within the period (any message does), and samples
// the rate of steering points.
func (l *ioLoop) heartbeat() {
	e := l.e
	now := time.Now()
	if last := e.courier.LastSent(); now.Sub(last) < l.period {
		l.nextBeat = last.Add(l.period)
	} else {
		content, _ := wire.EncodeContent(wire.HeartbeatContent{Queued: e.queue.len(), Running: e.currentID()})
		e.courier.Flush(&wire.Message{Header: e.header(wire.Heartbeat, ""), Content: content})
		l.nextBeat = now.Add(l.period)
	}
	e.steer.mu.Lock()
	e.steer.rate.sample(now, e.steer.step.Load())
	e.steer.mu.Unlock()
}

// handle acts on what the controller sent: one message or a batch.
func (l *ioLoop) handle(frames [][]byte) {
	msgs, err := l.signer.OpenAll(frames, false)
	if err != nil {
		l.e.log.Warn("refused a message from the controller", "reason", err)
		return
	}
	l.lastHeard = time.Now()
	for _, m := range msgs {
		l.handleOne(m)
	}
}

func (l *ioLoop) handleOne(m *wire.Message) {
	e := l.e
	switch m.Type {
	case wire.RegisterReply:
		var r wire.RegisterReplyContent
		if err := wire.DecodeContent(m, &r); err != nil {
			l.stop = fmt.Errorf("engine: registration reply: %w", err)
			return
		}
		if l.period == 0 {
			e.id.Store(int64(r.ID))
			e.job.Store(int64(r.Job))
			l.period = max(time.Duration(r.HeartbeatMS)*time.Millisecond, 10*time.Millisecond)
			l.nextBeat = time.Now().Add(l.period)
			e.registeredOnce.Do(func() { close(e.registered) })
			e.log.Info("registered", "engine", r.ID, "controller", l.ci.Endpoint)
		}
	case wire.Heartbeat:
	case wire.Apply, wire.Map, wire.Push, wire.Pull, wire.Clear, wire.Execute:
		e.queue.push(m)
	case wire.Abort:
		var req wire.IDsContent
		if m.Content != nil {
			if err := wire.DecodeContent(m, &req); err != nil {
				e.log.Warn("bad abort request", "err", err)
				return
			}
		}
		var replies []*wire.Message
		for _, t := range e.queue.remove(req.IDs) {
			replies = append(replies, e.aborted(t))
		}
		e.post(replies...)
	case wire.Interrupt:
		// The content, if any, names the task to interrupt: the one the
		// controller counts as running.
		var req wire.IDsContent
		if m.Content != nil {
			if err := wire.DecodeContent(m, &req); err != nil {
				e.log.Warn("bad interrupt request", "err", err)
				return
			}
		}
		e.interrupt(errInterrupted, req.IDs...)
	case wire.Steer:
		e.receiveSteer(m)
	case wire.SteerCommit:
		e.commitSteer(m)
	case wire.Shutdown:
		l.stop = errShutdown
	case wire.Error:
		var info wire.ErrorInfo
		wire.DecodeContent(m, &info)
		if info.Type == "NotRegistered" || info.Type == "ShuttingDown" {
			l.stop = fmt.Errorf("engine: %w: the controller refused this engine: %s", ErrControllerLost, info.Message)
			return
		}
		if l.period == 0 && m.Parent != "" {
			l.stop = fmt.Errorf("engine: the controller refused the registration: %s", info.Message)
			return
		}
		e.log.Warn("the controller reported an error", "type", info.Type, "message", info.Message)
	default:
		e.log.Warn("ignored an unexpected message", "type", m.Type)
	}
}

// aborted is the reply to a task removed from the queue before it ran.
func (e *Engine) aborted(t *wire.Message) *wire.Message {
	h := e.header(wire.TaskReply, t.ID)
	h.Status = wire.StatusAborted
	now := time.Now().UnixNano()
	h.Started, h.Completed = now, now
	content, _ := wire.EncodeContent(wire.ErrorInfo{Type: "TaskAborted", Message: "aborted before it started"})
	return &wire.Message{Header: h, Content: content}
}

var (
	errInterrupted = &taskError{kind: "Interrupted", msg: "interrupted by a client"}
	errStopping    = &taskError{kind: "EngineError", msg: "the engine shut down while the task ran"}
)

// interrupt cancels the running task, or if ids are given, the one of them
// that runs.
//
// The controller counts a task as running from when it sends it, so if no
// task has started yet, the interrupt is for the next one in the queue: it
// ends as soon as it starts. With nothing running or queued, there is
// nothing to interrupt. (Without ids, an interrupt that comes just after a
// task finished, while another is queued, stops that other task: only the
// controller knows which task it meant.)
func (e *Engine) interrupt(cause error, ids ...string) {
	e.curMu.Lock()
	defer e.curMu.Unlock()
	meant := func(id string) bool { return id != "" && (len(ids) == 0 || slices.Contains(ids, id)) }
	if e.cur != nil {
		if meant(e.curID) {
			e.cur(cause)
		}
		return
	}
	if id := e.queue.upcoming(); meant(id) {
		e.early, e.earlyCause = id, cause
	}
}

// start makes cancel the running task's, id's, and applies an interrupt
// that came before it started.
func (e *Engine) start(id string, cancel context.CancelCauseFunc) {
	e.curMu.Lock()
	defer e.curMu.Unlock()
	e.cur, e.curID = cancel, id
	if e.early == id {
		cancel(e.earlyCause)
	}
	e.early, e.earlyCause = "", nil // an interrupt for a task that was aborted meanwhile lapses
}

// finish records that the running task has ended: an interrupt from now
// on is for the next one, even before the runner takes it.
func (e *Engine) finish() {
	e.curMu.Lock()
	defer e.curMu.Unlock()
	e.cur, e.curID = nil, ""
	e.queue.finished()
}

func (e *Engine) currentID() string { return e.queue.current() }

// workQueue holds work in arrival order until a goroutine runs it, one
// item at a time.
type workQueue struct {
	mu      sync.Mutex
	items   []*wire.Message
	running string // the id of the item being run
	runner  bool   // a goroutine runs items
	closed  bool   // nothing more is taken
}

func (q *workQueue) push(m *wire.Message) {
	q.mu.Lock()
	q.items = append(q.items, m)
	q.mu.Unlock()
}

// take returns the next item if no goroutine runs one, and makes the
// caller the runner; else nil.
func (q *workQueue) take() *wire.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.runner || q.closed || len(q.items) == 0 {
		return nil
	}
	q.runner = true
	return q.popLocked()
}

// next ends the runner's item and returns the next one, or nil: then the
// caller is no longer the runner.
func (q *workQueue) next() *wire.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.running = ""
	if q.closed || len(q.items) == 0 {
		q.runner = false
		return nil
	}
	return q.popLocked()
}

func (q *workQueue) popLocked() *wire.Message {
	m := q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	q.running = m.ID
	return m
}

// finished records that the runner's item has ended; the runner stays.
func (q *workQueue) finished() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.running = ""
}

// done ends the runner's turn, whether or not it has more to take.
func (q *workQueue) done() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.running, q.runner = "", false
}

// close stops the taking of items.
func (q *workQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
}

// reset drops all items and opens the queue.
func (q *workQueue) reset() {
	q.mu.Lock()
	defer q.mu.Unlock()
	clear(q.items)
	q.items, q.closed = q.items[:0], false
}

// remove takes the queued items with the given ids, or all if ids is empty.
func (q *workQueue) remove(ids []string) []*wire.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*wire.Message
	keep := q.items[:0]
	for _, m := range q.items {
		if len(ids) == 0 || slices.Contains(ids, m.ID) {
			out = append(out, m)
		} else {
			keep = append(keep, m)
		}
	}
	clear(q.items[len(keep):])
	q.items = keep
	return out
}

func (q *workQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

func (q *workQueue) current() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.running
}

// upcoming returns the id of the item being run, or else of the first
// queued item, or "".
func (q *workQueue) upcoming() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.running != "":
		return q.running
	case len(q.items) > 0:
		return q.items[0].ID
	}
	return ""
}

// run executes one work request and returns its reply.
func (e *Engine) run(ctx context.Context, m *wire.Message) *wire.Message {
	taskCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if m.Timeout > 0 {
		var stop context.CancelFunc
		taskCtx, stop = context.WithTimeoutCause(taskCtx, m.Timeout,
			&taskError{kind: "TimeoutError", msg: fmt.Sprintf("the task ran longer than its timeout of %v", m.Timeout)})
		defer stop()
	}
	e.start(m.ID, cancel)
	defer e.finish()
	started := time.Now()
	var content []byte
	var bufs [][]byte
	var err error
	if cause := context.Cause(taskCtx); cause != nil {
		err = cause // interrupted, or the engine stopped, before it started
	} else {
		content, bufs, err = e.doCaptured(taskCtx, m)
	}
	completed := time.Now()
	if err != nil && taskCtx.Err() != nil {
		if cause := context.Cause(taskCtx); cause != nil {
			var te *taskError
			if errors.As(cause, &te) {
				// An interrupt or timeout: its kind, and what the function
				// added to it (such as a communicator now broken).
				if err != error(te) && errors.Is(err, te) {
					err = &taskError{kind: te.kind, msg: err.Error()}
				} else {
					err = te
				}
			}
		}
	}
	h := e.header(wire.TaskReply, m.ID)
	h.Started, h.Completed, h.Status = started.UnixNano(), completed.UnixNano(), wire.StatusOK
	if err != nil {
		h.Status = wire.StatusError
		content, _ = wire.EncodeContent(errorInfo(err))
		bufs = nil
	}
	return &wire.Message{Header: h, Content: content, Buffers: bufs}
}

// doCaptured performs the work of m, with its output captured if the
// engine captures, and any panic turned into an error.
func (e *Engine) doCaptured(ctx context.Context, m *wire.Message) (content []byte, bufs [][]byte, err error) {
	if e.cap != nil {
		e.cap.begin(m.ID)
		defer e.cap.end()
	}
	defer func() {
		// f.call recovers the function's panics; this catches those of
		// the engine's own handling of its result, such as a MarshalMsgpack
		// method of the result type.
		if p := recover(); p != nil {
			content, bufs, err = nil, nil, &taskError{kind: "Panic", msg: fmt.Sprint(p), stack: string(debug.Stack())}
		}
	}()
	return e.do(ctx, m)
}

// do performs the work of m.
func (e *Engine) do(ctx context.Context, m *wire.Message) ([]byte, [][]byte, error) {
	if err := m.CheckBuffers(); err != nil {
		return nil, nil, &taskError{kind: "AuthError", msg: err.Error()}
	}
	switch m.Type {
	case wire.Apply:
		name, args, err := wire.DecodeApply(m)
		if err != nil {
			return nil, nil, err
		}
		f, err := e.lookupOrCell(name)
		if err != nil {
			return nil, nil, err
		}
		if err := e.resolve(args); err != nil {
			return nil, nil, err
		}
		v, err := f.call(ctx, args)
		if err != nil {
			return nil, nil, err
		}
		return encodeResult(wire.EncodeResult(v))
	case wire.Map:
		name, items, err := wire.DecodeMap(m)
		if err != nil {
			return nil, nil, err
		}
		f, err := e.lookupOrCell(name)
		if err != nil {
			return nil, nil, err
		}
		if err := e.resolve(items); err != nil {
			return nil, nil, err
		}
		out := make([]any, len(items))
		arg := make([]wire.Value, 1)
		for i, it := range items {
			if err := context.Cause(ctx); err != nil {
				return nil, nil, err // interrupted: the other items do not run
			}
			arg[0] = it
			v, err := f.call(ctx, arg)
			if err != nil {
				info := errorInfo(err)
				return nil, nil, &taskError{kind: info.Type, msg: fmt.Sprintf("item %d: %s", i, info.Message), stack: info.Traceback}
			}
			out[i] = v
		}
		return encodeResult(wire.EncodeResults(out))
	case wire.Push:
		names, values, err := wire.DecodePush(m)
		if err != nil {
			return nil, nil, err
		}
		for i, name := range names {
			v, err := values[i].Detach()
			if err != nil {
				return nil, nil, fmt.Errorf("variable %q: %w", name, err)
			}
			if g, err := v.Decode(); err == nil {
				e.ns.Set(name, g) // arrays stay the detached buffer
			} else {
				e.ns.Set(name, v) // opaque to cells, and pulled as it came
			}
		}
		return nil, nil, nil
	case wire.Pull:
		names, err := wire.DecodePull(m)
		if err != nil {
			return nil, nil, err
		}
		out := make([]any, len(names))
		for i, name := range names {
			v, ok, err := e.ns.Get(name)
			switch {
			case !ok:
				return nil, nil, nameError("name %q is not defined on engine %d", name, e.ID())
			case err != nil:
				return nil, nil, typeError("%v", err)
			}
			out[i] = v
		}
		return encodeResult(wire.EncodeResults(out))
	case wire.Clear:
		e.ns.Clear()
		return nil, nil, nil
	case wire.Execute:
		v, err := e.runCell(ctx, m)
		if err != nil {
			return nil, nil, err
		}
		return encodeResult(wire.EncodeResult(v))
	}
	return nil, nil, fmt.Errorf("engine: %s is not work", m.Type)
}

func encodeResult(content []byte, bufs [][]byte, err error) ([]byte, [][]byte, error) {
	if err != nil {
		return nil, nil, typeError("cannot send the result: %v", err)
	}
	return content, bufs, nil
}

// resolve replaces namespace references by the values they name.
func (e *Engine) resolve(args []wire.Value) error {
	for i, a := range args {
		if name, ok := a.Ref(); ok {
			g, found, err := e.ns.Get(name)
			if !found {
				return nameError("name %q is not defined on engine %d", name, e.ID())
			}
			if err == nil {
				args[i], err = valueOf(g)
			}
			if err != nil {
				return typeError("%v", err)
			}
		}
	}
	return nil
}

func (e *Engine) lookup(name string) (*function, error) {
	e.mu.RLock()
	f := e.funcs[name]
	e.mu.RUnlock()
	if f == nil {
		return nil, nameError("no function %q is registered on engine %d (registered: %s)",
			name, e.ID(), strings.Join(e.Functions(), ", "))
	}
	return f, nil
}
