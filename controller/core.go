package controller

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ipcluster/ipcluster/controller/scheduler"
	"github.com/ipcluster/ipcluster/transport"
	"github.com/ipcluster/ipcluster/wire"
)

// sendFunc sends sealed frames (without the routing id) to a peer on
// the client port or the engine port: the Router sockets, or a recorder
// in tests.
type sendFunc func(engine bool, rid string, frames [][]byte) error

// Error types the controller puts in the replies it makes itself. Clients
// map the first three to typed errors.
const (
	errEngine        = "EngineError"    // the engine died or left with the task
	errAborted       = "TaskAborted"    // aborted before it ran
	errUnknownEngine = "UnknownEngine"  // a target is not registered
	errProtocol      = "ProtocolError"  // malformed, unknown type or version
	errAuth          = "AuthError"      // bad signature
	errVersion       = "VersionError"   // another protocol version
	errReplay        = "ReplayError"    // sequence number not rising
	errShutdown      = "ShuttingDown"   // the controller is stopping
	errDuplicate     = "DuplicateID"    // a request id already in use
	errBadRequest    = "BadRequest"     // well-formed but meaningless
	errAuthzEngine   = "NotRegistered"  // an engine message before registration
	errImpersonation = "WrongEngineID"  // an engine claiming another's id
	errUnexpected    = "UnexpectedType" // a type not accepted from this side
)

type engineState struct {
	info     wire.EngineInfo
	rid      string
	lastSeen time.Time
	queue    []*task // outstanding tasks, in the order sent; the first is running
	steering []*task // steering requests sent, not yet answered
}

type taskKey struct {
	id     string
	engine int // wire.NoEngine for a balanced task, whose engine may change
}

// task is one work request on one engine, or one balanced task.
type task struct {
	key       taskKey
	typ       wire.Type
	client    string // routing id of the client that sent it
	balanced  bool
	retries   int
	raw       wire.Raw // the request, kept while it may still be sent
	engine    int
	attempts  int
	submitted time.Time
	sent      time.Time
	seq       uint64 // order of submission, for deterministic sweeps
}

// core is the controller's logic, driven by one goroutine.
type core struct {
	cfg       *Config
	log       *slog.Logger
	clusterID string
	session   *wire.Session
	clientKey *wire.Signer
	engineKey *wire.Signer
	// One replay guard per port: clients see engines' sessions in the
	// replies relayed to them (and engines see clients'), so a shared guard
	// would let one side exhaust the other's sequence numbers.
	clientGuard wire.ReplayGuard
	engineGuard wire.ReplayGuard
	sched       *scheduler.Scheduler
	out         outbox
	now         time.Time
	onCount     func(int)

	engines map[int]*engineState
	// bySession finds engines by session id, which is also the routing id
	// of the socket they receive on: they may send from another.
	bySession map[string]*engineState
	nextID    int
	jobs      map[string]int  // the controller's job number by launcher key
	ranks     map[jobRank]int // the engine holding each rank of a job
	tasks     map[taskKey]*task
	ids       map[string]int // live tasks per request id
	taskSeq   uint64
	clients   map[string]bool
	agree     *agreements
	history   history
	kept      retention

	lastCheck    time.Time
	stopping     bool
	stopDeadline time.Time
}

func newCore(cfg *Config, clusterID string, sched *scheduler.Scheduler, clientKey, engineKey []byte) *core {
	return &core{
		cfg: cfg, log: cfg.Logger, clusterID: clusterID, session: wire.NewSession(),
		clientKey: wire.NewSigner(clientKey), engineKey: wire.NewSigner(engineKey),
		clientGuard: wire.ReplayGuard{Max: 100000}, engineGuard: wire.ReplayGuard{Max: 100000},
		sched: sched, now: time.Now(), onCount: func(int) {},
		engines: make(map[int]*engineState), bySession: make(map[string]*engineState),
		jobs: make(map[string]int), ranks: make(map[jobRank]int), tasks: make(map[taskKey]*task), ids: make(map[string]int), clients: make(map[string]bool),
		agree:   newAgreements(),
		history: history{max: cfg.TaskHistory, byID: make(map[string][]wire.TaskInfo)},
		kept:    retention{maxCount: cfg.ResultCache, maxBytes: cfg.ResultCacheBytes, byID: make(map[string][]keptReply)},
	}
}

// ---- clients ----

// handleClient handles what a client sent: one message or a batch.
func (c *core) handleClient(rid string, frames [][]byte) {
	batch, msgs, err := c.clientKey.OpenRelay(frames)
	if err != nil {
		c.refuse("client", rid, frames, err)
		return
	}
	if batch != nil {
		if err := c.clientGuard.Check(batch.Session, batch.Seq); err != nil {
			c.replyError(batch.Session, batch.ID, errReplay, err.Error())
			return
		}
	}
	for _, r := range msgs {
		if err := c.clientGuard.Check(r.Session, r.Seq); err != nil {
			c.replyError(r.Session, r.ID, errReplay, err.Error())
			continue
		}
		c.clientMessage(r.Message, r.Raw)
	}
}

// clientMessage handles one message of a client, which is addressed by
// its session id: the routing id of the socket it receives on, whichever
// socket it sent from.
func (c *core) clientMessage(m *wire.Message, raw wire.Raw) {
	rid := m.Session
	switch m.Type {
	case wire.Connect:
		c.clients[rid] = true
		c.reply(rid, m, wire.ConnectReply, wire.ConnectReplyContent{
			ClusterID: c.clusterID, HeartbeatMS: int(c.cfg.HeartbeatPeriod.Milliseconds()), Engines: c.engineList(),
		})
	case wire.Disconnect:
		delete(c.clients, rid)
		c.clientGuard.Forget(m.Session)
	case wire.Apply, wire.Map, wire.Push, wire.Pull, wire.Clear, wire.Execute:
		c.submit(rid, m, raw)
	case wire.Steer:
		c.steer(rid, m, raw)
	case wire.Engines:
		c.reply(rid, m, wire.EnginesReply, wire.EnginesReplyContent{Engines: c.engineList()})
	case wire.TaskStatus:
		var req wire.IDsContent
		if err := wire.DecodeContent(m, &req); err != nil {
			c.replyError(rid, m.ID, errProtocol, err.Error())
			return
		}
		var out wire.TaskStatusReplyContent
		for _, id := range req.IDs {
			out.Tasks = append(out.Tasks, c.status(id)...)
		}
		c.reply(rid, m, wire.TaskStatusReply, out)
	case wire.Results:
		var req wire.IDsContent
		if err := wire.DecodeContent(m, &req); err != nil {
			c.replyError(rid, m.ID, errProtocol, err.Error())
			return
		}
		var out wire.ResultsReplyContent
		for _, id := range req.IDs {
			kept := c.kept.take(id)
			if kept == nil {
				out.Missing = append(out.Missing, id)
			}
			for _, r := range kept {
				c.out.toClient(rid, r, id) // kept again if this client is gone too
			}
		}
		c.reply(rid, m, wire.ResultsReply, out)
	case wire.Abort:
		c.abort(rid, m)
	case wire.Interrupt:
		if c.checkTargets(rid, m) {
			// Name the task meant: the first of each engine's queue. The
			// engine may not have started it yet; it then ends as it starts.
			// An engine with nothing outstanding has nothing to interrupt.
			for _, e := range m.Targets {
				if eng := c.engines[e]; len(eng.queue) > 0 {
					c.sendEngine(eng, wire.Interrupt, m.ID, wire.IDsContent{IDs: []string{eng.queue[0].key.id}})
				}
			}
			c.reply(rid, m, wire.InterruptReply, nil)
		}
	case wire.Shutdown:
		var req wire.ShutdownContent
		if err := wire.DecodeContent(m, &req); err != nil {
			c.replyError(rid, m.ID, errProtocol, err.Error())
			return
		}
		if len(m.Targets) > 0 && !c.checkTargets(rid, m) {
			return
		}
		if !req.Controller { // else beginShutdown tells every engine
			for _, e := range m.Targets {
				c.sendEngine(c.engines[e], wire.Shutdown, m.ID, nil)
			}
		}
		c.reply(rid, m, wire.ShutdownReply, nil)
		if req.Controller {
			c.beginShutdown("a client asked the controller to shut down")
		}
	default:
		c.replyError(rid, m.ID, errUnexpected, fmt.Sprintf("message type %q is not accepted from clients", m.Type))
	}
}

// submit accepts a work request: balanced ones go to the scheduler,
// direct ones to each target's queue at once.
func (c *core) submit(rid string, m *wire.Message, raw wire.Raw) {
	if !c.acceptable(rid, m) {
		return
	}
	if m.Balanced {
		key := taskKey{m.ID, wire.NoEngine}
		c.addTask(&task{key: key, typ: m.Type, client: rid, balanced: true, retries: m.Retries,
			raw: raw, engine: wire.NoEngine, submitted: c.now})
		c.sched.Submit(scheduler.Task{ID: m.ID, Targets: m.Targets, Retries: m.Retries})
		c.applyActions()
		return
	}
	if len(m.Targets) == 0 {
		c.replyError(rid, m.ID, errBadRequest, "a direct request must name its engines (set balanced for the scheduler to choose)")
		return
	}
	if !c.checkTargets(rid, m) {
		return
	}
	c.sendDirect(rid, m, raw, func(eng *engineState, t *task) {
		eng.queue = append(eng.queue, t)
		c.sched.DirectSent(eng.info.ID)
	})
}

// acceptable replies an error and returns false unless a new request can
// be taken: the controller is not stopping, and its id is not in use.
func (c *core) acceptable(rid string, m *wire.Message) bool {
	if c.stopping {
		c.replyError(rid, m.ID, errShutdown, "the controller is shutting down")
		return false
	}
	if c.ids[m.ID] > 0 {
		c.replyError(rid, m.ID, errDuplicate, fmt.Sprintf("request id %q is already in use", m.ID))
		return false
	}
	return true
}

// sendDirect relays a request to each of its (checked) targets as one
// task each, which file files with the engine.
func (c *core) sendDirect(rid string, m *wire.Message, raw wire.Raw, file func(*engineState, *task)) {
	if len(m.Targets) > 1 {
		raw.Env = wire.WithoutTargets(raw.Env)
	}
	for _, e := range m.Targets {
		eng := c.engines[e]
		t := &task{key: taskKey{m.ID, e}, typ: m.Type, client: rid, engine: e, attempts: 1, submitted: c.now, sent: c.now}
		c.addTask(t)
		file(eng, t)
		c.out.toEngine(eng.rid, raw)
	}
}

// checkTargets replies an error and returns false unless m's targets are
// registered engines, each named once.
func (c *core) checkTargets(rid string, m *wire.Message) bool {
	if len(m.Targets) == 0 {
		c.replyError(rid, m.ID, errBadRequest, fmt.Sprintf("%s names no engines", m.Type))
		return false
	}
	seen := make(map[int]bool, len(m.Targets))
	for _, e := range m.Targets {
		if c.engines[e] == nil {
			c.replyError(rid, m.ID, errUnknownEngine, fmt.Sprintf("engine %d is not registered (registered: %s)", e, c.idList()))
			return false
		}
		if seen[e] {
			c.replyError(rid, m.ID, errBadRequest, fmt.Sprintf("engine %d is named twice", e))
			return false
		}
		seen[e] = true
	}
	return true
}

// abort removes work before it runs: tasks by id, or with targets and no
// ids everything queued on those engines. Running tasks are left alone
// (Interrupt stops those).
func (c *core) abort(rid string, m *wire.Message) {
	var req wire.IDsContent
	if m.Content != nil {
		if err := wire.DecodeContent(m, &req); err != nil {
			c.replyError(rid, m.ID, errProtocol, err.Error())
			return
		}
	}
	if len(req.IDs) == 0 && len(m.Targets) == 0 {
		c.replyError(rid, m.ID, errBadRequest, "abort names neither tasks nor engines")
		return
	}
	if len(req.IDs) == 0 {
		if !c.checkTargets(rid, m) {
			return
		}
		for _, e := range m.Targets {
			c.sendEngine(c.engines[e], wire.Abort, m.ID, wire.IDsContent{})
		}
		c.reply(rid, m, wire.AbortReply, nil)
		return
	}
	perEngine := make(map[int][]string)
	for _, id := range req.IDs {
		if c.sched.Abort(id) {
			continue // was pending: the scheduler's Fail action answers it
		}
		if t := c.tasks[taskKey{id, wire.NoEngine}]; t != nil && t.engine != wire.NoEngine {
			perEngine[t.engine] = append(perEngine[t.engine], id)
		}
		for e, eng := range c.engines {
			if c.tasks[taskKey{id, e}] != nil && eng != nil {
				perEngine[e] = append(perEngine[e], id)
			}
		}
	}
	c.applyActions()
	for _, e := range slices.Sorted(maps.Keys(perEngine)) {
		c.sendEngine(c.engines[e], wire.Abort, m.ID, wire.IDsContent{IDs: perEngine[e]})
	}
	c.reply(rid, m, wire.AbortReply, nil)
}

// ---- engines ----

// handleEngine handles what an engine sent: one message or a batch.
func (c *core) handleEngine(rid string, frames [][]byte) {
	batch, msgs, err := c.engineKey.OpenRelay(frames)
	if err != nil {
		c.refuse("engine", rid, frames, err)
		return
	}
	if batch != nil {
		if err := c.engineGuard.Check(batch.Session, batch.Seq); err != nil {
			c.replyEngineError(batch.Session, batch.ID, errReplay, err.Error())
			return
		}
	}
	for _, r := range msgs {
		if err := c.engineGuard.Check(r.Session, r.Seq); err != nil {
			c.replyEngineError(r.Session, r.ID, errReplay, err.Error())
			continue
		}
		c.engineMessage(rid, r.Message, r.Raw)
	}
}

// engineMessage handles one message of an engine, which is known by its
// session id: the routing id of the socket it receives on, from which it
// registers. Its other messages may come from another socket.
func (c *core) engineMessage(from string, m *wire.Message, raw wire.Raw) {
	rid := m.Session
	eng := c.bySession[rid]
	if m.Type == wire.Register {
		if from != rid {
			c.replyEngineError(from, m.ID, errBadRequest,
				"register from the socket whose routing id is the session id: replies go there")
			return
		}
		c.register(rid, eng, m)
		return
	}
	if eng == nil {
		if m.Type != wire.Unregister {
			c.replyEngineError(rid, m.ID, errAuthzEngine,
				"this engine is not registered (it may have been declared dead after missing heartbeats)")
		}
		return
	}
	eng.lastSeen = c.now
	if m.Engine != wire.NoEngine && m.Engine != eng.info.ID {
		c.replyEngineError(rid, m.ID, errImpersonation, fmt.Sprintf("you are engine %d, not %d", eng.info.ID, m.Engine))
		return
	}
	switch m.Type {
	case wire.Heartbeat:
		c.sendEngine(eng, wire.Heartbeat, m.ID, nil)
	case wire.TaskReply:
		c.taskReply(eng, m, raw)
	case wire.SteerAck:
		c.steerAck(eng, m)
	case wire.Output:
		if t := c.liveTask(m.Parent, eng.info.ID); t != nil {
			c.out.toClient(t.client, raw, "")
		}
	case wire.Unregister:
		c.removeEngine(eng, wire.EventUnregistered, "the engine unregistered")
	default:
		c.replyEngineError(rid, m.ID, errUnexpected, fmt.Sprintf("message type %q is not accepted from engines", m.Type))
	}
}

func (c *core) register(rid string, eng *engineState, m *wire.Message) {
	if eng != nil { // a repeated registration: same answer
		c.sendEngine(eng, wire.RegisterReply, m.ID, c.registerReply(eng))
		return
	}
	if c.stopping {
		c.replyEngineError(rid, m.ID, errShutdown, "the controller is shutting down")
		return
	}
	var info wire.EngineInfo
	if err := wire.DecodeContent(m, &info); err != nil {
		c.replyEngineError(rid, m.ID, errProtocol, err.Error())
		return
	}
	if msg := c.checkRank(&info); msg != "" {
		c.replyEngineError(rid, m.ID, errBadRequest, msg)
		return
	}
	info.ID = c.nextID
	c.nextID++
	info.Job = 0 // the controller's number, not the engine's say
	if info.JobKey != "" {
		if c.jobs[info.JobKey] == 0 {
			c.jobs[info.JobKey] = len(c.jobs) + 1
		}
		info.Job = c.jobs[info.JobKey]
		if info.Size > 0 {
			c.ranks[jobRank{info.JobKey, info.Rank}] = info.ID
		}
	}
	info.Registered = c.now.UnixNano()
	info.State, info.Queued, info.Running, info.LastHeartbeat = "", 0, "", 0
	eng = &engineState{info: info, rid: rid, lastSeen: c.now}
	c.engines[info.ID] = eng
	c.bySession[rid] = eng
	c.sendEngine(eng, wire.RegisterReply, m.ID, c.registerReply(eng))
	c.log.Info("engine registered", "engine", info.ID, "host", info.Host, "pid", info.PID, "job", info.Job, "rank", info.Rank)
	c.sched.AddEngine(info.ID)
	c.applyActions()
	c.broadcast(wire.EngineEventContent{Event: wire.EventRegistered, Engine: c.describe(eng)})
	c.onCount(len(c.engines))
}

// jobRank names one rank of one job, by the launcher's job key.
type jobRank struct {
	job  string
	rank int
}

// checkRank returns why an engine's rank and size cannot be accepted, or "".
// Ranks of a job are unique so that a job's view addresses each rank once.
func (c *core) checkRank(info *wire.EngineInfo) string {
	switch {
	case info.Size < 0:
		return fmt.Sprintf("MPI size %d is negative", info.Size)
	case info.Size > 0 && (info.Rank < 0 || info.Rank >= info.Size):
		return fmt.Sprintf("rank %d is outside the job's ranks 0..%d", info.Rank, info.Size-1)
	case info.Size > 0 && info.JobKey != "":
		if other, ok := c.ranks[jobRank{info.JobKey, info.Rank}]; ok {
			return fmt.Sprintf("job %d already has rank %d (engine %d)", c.jobs[info.JobKey], info.Rank, other)
		}
	}
	return ""
}

func (c *core) registerReply(eng *engineState) wire.RegisterReplyContent {
	return wire.RegisterReplyContent{ID: eng.info.ID, Job: eng.info.Job, HeartbeatMS: int(c.cfg.HeartbeatPeriod.Milliseconds()), ClusterID: c.clusterID}
}

// taskReply routes a result to its client, unless a failed balanced task
// is to be retried elsewhere.
func (c *core) taskReply(eng *engineState, m *wire.Message, raw wire.Raw) {
	t := c.liveTask(m.Parent, eng.info.ID)
	if t == nil {
		c.log.Debug("dropped a late reply", "task", m.Parent, "engine", eng.info.ID)
		return
	}
	eng.queue = removeTask(eng.queue, t)
	if t.typ == wire.Steer {
		c.steerReplied(eng, t, m)
	} else if t.balanced {
		run := time.Duration(m.Completed - m.Started)
		failedOn := t.engine
		t.engine = wire.NoEngine // until the scheduler places it again, if it does
		retrying := c.sched.Finished(t.key.id, m.Status == wire.StatusError, run)
		if retrying {
			c.log.Info("retrying a failed task", "task", t.key.id, "failed on", failedOn, "attempt", t.attempts)
		}
		c.applyActions()
		if retrying {
			return
		}
		t.engine = failedOn
	} else {
		c.sched.DirectDone(eng.info.ID)
		c.applyActions()
	}
	c.dropTask(t)
	state := wire.TaskDone
	switch m.Status {
	case wire.StatusError:
		state = wire.TaskFailed
	case wire.StatusAborted:
		state = wire.TaskAborted
	}
	c.history.add(wire.TaskInfo{ID: t.key.id, Engine: eng.info.ID, State: state, Submitted: t.submitted.UnixNano(),
		Started: m.Started, Completed: m.Completed, Attempts: t.attempts})
	c.out.toClient(t.client, raw, t.key.id)
}

func (c *core) addTask(t *task) {
	c.taskSeq++
	t.seq = c.taskSeq
	c.tasks[t.key] = t
	c.ids[t.key.id]++
}

func (c *core) dropTask(t *task) {
	delete(c.tasks, t.key)
	if c.ids[t.key.id]--; c.ids[t.key.id] <= 0 {
		delete(c.ids, t.key.id)
	}
}

// liveTask finds the task a message from engine e is about.
func (c *core) liveTask(id string, e int) *task {
	if t := c.tasks[taskKey{id, e}]; t != nil {
		return t
	}
	if t := c.tasks[taskKey{id, wire.NoEngine}]; t != nil && t.engine == e {
		return t
	}
	return nil
}

func removeTask(q []*task, t *task) []*task {
	if len(q) > 0 && q[0] == t {
		q[0] = nil
		return q[1:]
	}
	if i := slices.Index(q, t); i >= 0 {
		return slices.Delete(q, i, i+1)
	}
	return q
}

// removeEngine forgets an engine that died or left: its direct tasks fail,
// its balanced tasks are retried or fail, and clients are told.
func (c *core) removeEngine(eng *engineState, event, reason string) {
	id := eng.info.ID
	delete(c.engines, id)
	delete(c.bySession, eng.rid)
	if k := (jobRank{eng.info.JobKey, eng.info.Rank}); c.ranks[k] == id {
		delete(c.ranks, k)
	}
	c.log.Info("engine gone", "engine", id, "event", event, "reason", reason)
	for _, t := range eng.queue {
		if t.balanced {
			t.engine = wire.NoEngine // the scheduler retries it elsewhere or fails it
		} else {
			c.failTask(t, errEngine, fmt.Sprintf("engine %d %s: %s", id, event, reason))
		}
	}
	for _, t := range eng.steering {
		c.failTask(t, errEngine, fmt.Sprintf("engine %d %s: %s", id, event, reason))
	}
	c.steerEngineGone(id, event)
	c.sched.RemoveEngine(id)
	c.applyActions()
	info := eng.info
	info.State = "dead"
	c.broadcast(wire.EngineEventContent{Event: event, Engine: info, Reason: reason})
	c.onCount(len(c.engines))
}

// applyActions carries out the scheduler's decisions.
func (c *core) applyActions() {
	for _, a := range c.sched.Actions() {
		switch a := a.(type) {
		case scheduler.Assign:
			t := c.tasks[taskKey{a.Task, wire.NoEngine}]
			eng := c.engines[a.Engine]
			if t == nil || eng == nil || t.raw.Env == nil {
				c.log.Error("scheduler assigned an unknown task or engine", "task", a.Task, "engine", a.Engine)
				continue
			}
			t.engine, t.attempts, t.sent = a.Engine, a.Attempt, c.now
			eng.queue = append(eng.queue, t)
			c.out.toEngine(eng.rid, t.raw)
			if a.Attempt > t.retries {
				t.raw = wire.Raw{} // no later attempt will need it
			}
		case scheduler.Fail:
			t := c.tasks[taskKey{a.Task, wire.NoEngine}]
			if t == nil {
				continue
			}
			t.engine = a.Engine
			kind := map[scheduler.FailReason]string{
				scheduler.EngineDied: errEngine, scheduler.NoSuchEngine: errUnknownEngine, scheduler.Aborted: errAborted,
			}[a.Reason]
			c.failTask(t, kind, a.Detail)
		}
	}
}

// failTask answers a task with an error the controller makes itself.
func (c *core) failTask(t *task, kind, text string) {
	c.dropTask(t)
	status, state := wire.StatusError, wire.TaskFailed
	if kind == errAborted {
		status, state = wire.StatusAborted, wire.TaskAborted
	}
	engine := t.engine
	c.history.add(wire.TaskInfo{ID: t.key.id, Engine: engine, State: state, Submitted: t.submitted.UnixNano(),
		Completed: c.now.UnixNano(), Attempts: t.attempts})
	h := c.session.Header(wire.TaskReply)
	h.Parent, h.Engine, h.Status, h.Completed = t.key.id, engine, status, c.now.UnixNano()
	content, _ := wire.EncodeContent(wire.ErrorInfo{Type: kind, Message: text})
	c.out.toClient(t.client, c.encode(&wire.Message{Header: h, Content: content}), t.key.id)
}

// ---- timers and shutdown ----

// tick runs periodic work. Engines are judged dead only after the engine
// socket has been drained, so a busy controller does not blame engines
// for heartbeats it has not read yet.
func (c *core) tick(drained bool) {
	if !drained || c.now.Sub(c.lastCheck) < c.cfg.HeartbeatPeriod/2 {
		return
	}
	c.lastCheck = c.now
	limit := c.cfg.HeartbeatPeriod * time.Duration(c.cfg.HeartbeatMisses)
	var dead []*engineState
	for _, eng := range c.engines {
		if c.now.Sub(eng.lastSeen) > limit {
			dead = append(dead, eng)
		}
	}
	slices.SortFunc(dead, func(a, b *engineState) int { return a.info.ID - b.info.ID })
	for _, eng := range dead {
		c.removeEngine(eng, wire.EventDied, fmt.Sprintf("no heartbeat for %.1f s", c.now.Sub(eng.lastSeen).Seconds()))
	}
}

// nextTimeout is how long the loop may wait for input.
func (c *core) nextTimeout() time.Duration {
	d := c.cfg.HeartbeatPeriod / 2
	if c.stopping {
		d = min(d, c.stopDeadline.Sub(c.now))
	}
	return max(d, time.Millisecond)
}

func (c *core) beginShutdown(reason string) {
	if c.stopping {
		return
	}
	c.stopping = true
	c.stopDeadline = c.now.Add(c.cfg.StopTimeout)
	c.log.Info("shutting down", "reason", reason, "engines", len(c.engines))
	for _, eng := range c.sortedEngines() {
		c.sendEngine(eng, wire.Shutdown, "", nil)
	}
	for _, t := range c.sortedTasks() {
		if t.engine == wire.NoEngine { // pending in the scheduler
			c.sched.Abort(t.key.id)
			c.failTask(t, errShutdown, "the controller shut down before the task ran")
		}
	}
	c.applyActions() // the scheduler's Fail{Aborted}: answered already
}

// finish answers every task still live when the controller stops.
func (c *core) finish() {
	for _, t := range c.sortedTasks() {
		c.failTask(t, errShutdown, "the controller shut down before the task finished")
	}
}

// ---- replies and reports ----

// encode stamps a message of the controller's own and encodes it.
func (c *core) encode(m *wire.Message) wire.Raw {
	c.session.Stamp(&m.Header)
	return wire.Encode(m)
}

// reply answers a client request with content (nil for none).
func (c *core) reply(rid string, req *wire.Message, t wire.Type, content any) {
	h := c.session.Header(t)
	h.Parent = req.ID
	var body []byte
	if content != nil {
		var err error
		if body, err = wire.EncodeContent(content); err != nil {
			c.log.Error("encoding a reply", "type", t, "err", err)
			return
		}
	}
	c.out.toClient(rid, c.encode(&wire.Message{Header: h, Content: body}), "")
}

func (c *core) replyError(rid, parent, kind, text string) {
	c.log.Warn("refused a client message", "peer", fmt.Sprintf("%x", rid), "id", parent, "error", kind, "reason", text)
	h := c.session.Header(wire.Error)
	h.Parent = parent
	content, _ := wire.EncodeContent(wire.ErrorInfo{Type: kind, Message: text})
	c.out.toClient(rid, c.encode(&wire.Message{Header: h, Content: content}), "")
}

func (c *core) replyEngineError(rid, parent, kind, text string) {
	c.log.Warn("refused an engine message", "peer", fmt.Sprintf("%x", rid), "id", parent, "error", kind, "reason", text)
	h := c.session.Header(wire.Error)
	h.Parent = parent
	content, _ := wire.EncodeContent(wire.ErrorInfo{Type: kind, Message: text})
	c.out.toEngine(rid, c.encode(&wire.Message{Header: h, Content: content}))
}

// sendEngine sends a controller message to an engine.
func (c *core) sendEngine(eng *engineState, t wire.Type, parent string, content any) {
	h := c.session.Header(t)
	h.Parent = parent
	h.Engine = eng.info.ID
	var body []byte
	if content != nil {
		body, _ = wire.EncodeContent(content)
	}
	c.out.toEngine(eng.rid, c.encode(&wire.Message{Header: h, Content: body}))
}

// broadcast tells every connected client of an engine event.
func (c *core) broadcast(ev wire.EngineEventContent) {
	if len(c.clients) == 0 {
		return
	}
	h := c.session.Header(wire.EngineEvent)
	h.Engine = ev.Engine.ID
	content, _ := wire.EncodeContent(ev)
	raw := c.encode(&wire.Message{Header: h, Content: content})
	for _, rid := range slices.Sorted(maps.Keys(c.clients)) {
		c.out.toClient(rid, raw, "")
	}
}

// refuse logs a message that could not be opened and, where the sender
// can be told, answers it with an error naming the reason.
func (c *core) refuse(role, rid string, frames [][]byte, err error) {
	kind := errProtocol
	switch {
	case errors.Is(err, wire.ErrSignature):
		kind = errAuth
	case errors.Is(err, wire.ErrVersion):
		kind = errVersion
	}
	h, _ := wire.PeekHeader(frames) // the id, if any, even of an unknown type or version
	parent := h.ID
	if role == "client" {
		c.replyError(rid, parent, kind, err.Error())
	} else {
		c.replyEngineError(rid, parent, kind, err.Error())
	}
}

func (c *core) describe(eng *engineState) wire.EngineInfo {
	info := eng.info
	info.LastHeartbeat = eng.lastSeen.UnixNano()
	info.State = "idle"
	if len(eng.queue) > 0 {
		info.State = "busy"
		info.Running = eng.queue[0].key.id
		info.Queued = len(eng.queue) - 1
	}
	return info
}

func (c *core) sortedEngines() []*engineState {
	out := make([]*engineState, 0, len(c.engines))
	for _, e := range c.engines {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *engineState) int { return a.info.ID - b.info.ID })
	return out
}

func (c *core) sortedTasks() []*task {
	out := make([]*task, 0, len(c.tasks))
	for _, t := range c.tasks {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *task) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

func (c *core) engineList() []wire.EngineInfo {
	engines := c.sortedEngines()
	out := make([]wire.EngineInfo, len(engines))
	for i, e := range engines {
		out[i] = c.describe(e)
	}
	return out
}

func (c *core) idList() string {
	var b strings.Builder
	for i, e := range c.sortedEngines() {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, e.info.ID)
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// status reports the tasks of one request id, live or remembered.
func (c *core) status(id string) []wire.TaskInfo {
	var out []wire.TaskInfo
	info := func(t *task) wire.TaskInfo {
		ti := wire.TaskInfo{ID: id, Engine: t.engine, State: wire.TaskPending, Submitted: t.submitted.UnixNano(), Attempts: t.attempts}
		if eng := c.engines[t.engine]; eng != nil {
			ti.State = wire.TaskQueued
			if len(eng.queue) > 0 && eng.queue[0] == t {
				ti.State = wire.TaskRunning
			}
		}
		return ti
	}
	if t := c.tasks[taskKey{id, wire.NoEngine}]; t != nil {
		out = append(out, info(t))
	}
	for _, eng := range c.sortedEngines() {
		if t := c.tasks[taskKey{id, eng.info.ID}]; t != nil {
			out = append(out, info(t))
		}
	}
	out = append(out, c.history.byID[id]...)
	if len(out) == 0 {
		out = append(out, wire.TaskInfo{ID: id, Engine: wire.NoEngine, State: wire.TaskUnknown})
	}
	return out
}

// history remembers finished tasks for status queries, up to max entries.
type history struct {
	max   int
	byID  map[string][]wire.TaskInfo
	order []string
	n     int
}

func (h *history) add(ti wire.TaskInfo) {
	h.byID[ti.ID] = append(h.byID[ti.ID], ti)
	h.order = append(h.order, ti.ID)
	h.n++
	for h.n > h.max && len(h.order) > 0 {
		old := h.order[0]
		h.order = h.order[1:]
		if l := h.byID[old]; len(l) > 1 {
			h.byID[old] = l[1:]
		} else {
			delete(h.byID, old)
		}
		h.n--
	}
}

// retention keeps replies whose client was gone, by request id, up to a
// count and a byte size; the oldest go first. Taking an id's replies
// leaves stale references in order, which eviction skips and take
// compacts, so order stays proportional to what is kept.
type retention struct {
	maxCount int
	maxBytes int64
	byID     map[string][]keptReply // oldest first
	order    []keptRef              // every reply added, oldest first; stale once taken
	seq      uint64
	count    int
	bytes    int64
}

type keptReply struct {
	seq uint64
	raw wire.Raw
}

type keptRef struct {
	id  string
	seq uint64
}

func rawBytes(r wire.Raw) int64 {
	n := int64(len(r.Env))
	for _, f := range r.Frames {
		n += int64(len(f))
	}
	return n
}

// live reports whether ref names a reply still kept: an id's replies are
// taken all at once, so a reference older than its id's oldest is stale.
func (r *retention) live(ref keptRef) bool {
	l := r.byID[ref.id]
	return len(l) > 0 && l[0].seq <= ref.seq
}

func (r *retention) add(id string, raw wire.Raw) (evicted int) {
	r.seq++
	r.byID[id] = append(r.byID[id], keptReply{r.seq, raw})
	r.order = append(r.order, keptRef{id, r.seq})
	r.count++
	r.bytes += rawBytes(raw)
	for (r.count > r.maxCount || r.bytes > r.maxBytes) && len(r.order) > 0 {
		ref := r.order[0]
		r.order = r.order[1:]
		if !r.live(ref) {
			continue
		}
		l := r.byID[ref.id]
		r.bytes -= rawBytes(l[0].raw)
		r.count--
		evicted++
		if len(l) > 1 {
			r.byID[ref.id] = l[1:]
		} else {
			delete(r.byID, ref.id)
		}
	}
	return evicted
}

// take removes and returns the replies kept for id, oldest first.
func (r *retention) take(id string) []wire.Raw {
	l := r.byID[id]
	if l == nil {
		return nil
	}
	delete(r.byID, id)
	out := make([]wire.Raw, len(l))
	for i, k := range l {
		r.count--
		r.bytes -= rawBytes(k.raw)
		out[i] = k.raw
	}
	if len(r.order) > 2*r.count+64 {
		r.order = slices.DeleteFunc(r.order, func(ref keptRef) bool { return !r.live(ref) })
	}
	return out
}

// outbox holds what the core sends during one turn of the loop, by
// destination, so that several messages to one peer leave as one batch.
// A destination's staging area is kept from turn to turn (emptied), so
// that a request fanned out to a thousand engines allocates none.
type outbox struct {
	order []dest
	by    map[dest]*staged
}

// keepStaged bounds the emptied staging areas an outbox keeps beyond the
// destinations of one turn (peers that left keep theirs until then).
const keepStaged = 4096

type dest struct {
	engine bool
	rid    string
}

type staged struct {
	raws []wire.Raw
	keep []string // for each raw: the request id under which to keep it if its client is gone, or ""
}

func (o *outbox) add(d dest, r wire.Raw, keep string) {
	if o.by == nil {
		o.by = make(map[dest]*staged)
	}
	st := o.by[d]
	if st == nil {
		st = &staged{}
		o.by[d] = st
	}
	if len(st.raws) == 0 {
		o.order = append(o.order, d)
	}
	st.raws = append(st.raws, r)
	st.keep = append(st.keep, keep)
}

// toClient stages r for a client; keep, if not empty, is the request id
// of a task reply to keep for another client if this one is gone.
func (o *outbox) toClient(rid string, r wire.Raw, keep string) { o.add(dest{false, rid}, r, keep) }

// toEngine stages r for an engine.
func (o *outbox) toEngine(rid string, r wire.Raw) { o.add(dest{true, rid}, r, "") }

// maxBatch bounds the messages of one batch.
const maxBatch = 512

// sealed remembers the last message sealed on its own, so that the same
// message sent to many peers is signed and copied once: a direct request
// to a thousand engines is one envelope, relayed unchanged to each. The
// transport copies frames on sending, so they can be sent again.
type sealed struct {
	key    *wire.Signer
	raw    wire.Raw
	frames [][]byte
}

func (s *sealed) seal(key *wire.Signer, r wire.Raw) [][]byte {
	if key != s.key || !sameRaw(r, s.raw) {
		*s = sealed{key: key, raw: r, frames: key.SealRaw(wire.Header{}, []wire.Raw{r})}
	}
	return s.frames
}

// sameRaw reports whether a and b are the same message: the same
// envelope and frames in memory, not merely equal bytes (comparing bytes
// would cost what sealing once saves).
func sameRaw(a, b wire.Raw) bool {
	return len(a.Env) > 0 && len(a.Env) == len(b.Env) && &a.Env[0] == &b.Env[0] &&
		len(a.Frames) == len(b.Frames) && (len(a.Frames) == 0 || &a.Frames[0] == &b.Frames[0])
}

// flush seals what is staged, per destination, with that side's key, and
// sends it: one message as itself, several as batches. The task replies
// staged for a client that is gone are kept for a results request.
func (c *core) flush(send sendFunc) {
	o := &c.out
	var last sealed // a request fanned out to many engines is sealed once
	for _, d := range o.order {
		st := o.by[d]
		key := c.clientKey
		if d.engine {
			key = c.engineKey
		}
		for lo := 0; lo < len(st.raws); lo += maxBatch {
			hi := min(len(st.raws), lo+maxBatch)
			var frames [][]byte
			if hi-lo > 1 {
				h := c.session.Header(wire.Batch)
				c.session.Stamp(&h)
				frames = key.SealRaw(h, st.raws[lo:hi])
			} else {
				frames = last.seal(key, st.raws[lo])
			}
			err := send(d.engine, d.rid, frames)
			if err == nil {
				continue
			}
			if d.engine {
				c.log.Debug("engine unreachable", "peer", fmt.Sprintf("%x", d.rid), "err", err)
				continue
			}
			if errors.Is(err, transport.ErrUnreachable) {
				delete(c.clients, d.rid)
			} else {
				c.log.Warn("sending to a client failed", "peer", fmt.Sprintf("%x", d.rid), "err", err)
			}
			for i := lo; i < hi; i++ {
				if st.keep[i] == "" {
					continue
				}
				if evicted := c.kept.add(st.keep[i], st.raws[i]); evicted > 0 {
					c.log.Warn("result cache full: dropped the oldest results", "count", evicted)
				}
			}
		}
		clear(st.raws) // the messages may be large: keep none of them
		clear(st.keep)
		st.raws, st.keep = st.raws[:0], st.keep[:0]
	}
	if len(o.by) > len(o.order)+keepStaged {
		clear(o.by)
	}
	o.order = o.order[:0]
}
