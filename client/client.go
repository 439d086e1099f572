// Package client drives a cluster from Go: it connects to a controller,
// sends work to its engines and collects the results.
//
// Work goes out through views. A DirectView addresses engines explicitly
// (all of them, a list, a range): apply a function on each, push and pull
// variables, scatter and gather data. A LoadBalancedView lets the
// controller's scheduler choose the engine for each task. Calls return at
// once with an AsyncResult (or MapResult) to wait on; Client.Apply is the
// blocking shorthand of IPython parallel's getting-started session:
//
//	c, err := client.Connect(ctx, client.Options{})
//	res, err := c.Apply(ctx, "echo", []any{"Hello, World"}, client.Targets(client.All), client.Block)
//	// res: map[int]any{0: "Hello, World", 1: "Hello, World", ...}
//
// A Client is safe for concurrent use; many clients may share a cluster.
package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/ipcluster/ipcluster/internal/courier"
	"github.com/ipcluster/ipcluster/internal/profile"
	"github.com/ipcluster/ipcluster/internal/tunnel"
	"github.com/ipcluster/ipcluster/transport"
	"github.com/ipcluster/ipcluster/transport/zmqnet"
	"github.com/ipcluster/ipcluster/wire"
)

// Options say which cluster to connect to. With none set, the client
// reads the default profile's client connection file.
type Options struct {
	// Connection is the client credential itself.
	Connection *wire.ConnectionInfo
	// ConnectionFile is the path of a client connection file.
	ConnectionFile string
	// Profile names the profile whose connection file to read (default
	// $IPCLUSTER_PROFILE, else "default"; the profile directory is
	// $IPCLUSTER_DIR/<profile>, or ~/.ipcluster/<profile>).
	Profile string

	// Timeout bounds how long Connect waits for the controller to answer
	// when ctx has no deadline (default 10s).
	Timeout time.Duration

	// OnOutput, if set, is called with each chunk of a task's stdout or
	// stderr as it arrives, from the client's I/O goroutine: it must not
	// block. Output is also kept in each result's Metadata.
	OnOutput func(Output)

	// SSHServer, [user@]host[:port], reaches the controller through an
	// ssh tunnel to that server (the cluster's login node, typically),
	// which closes with the client; the controller's address in the
	// connection file is then as that server sees it. Default: the
	// connection file's "ssh". SSH tunes the tunnel.
	SSHServer string
	SSH       SSHOptions

	Logger  *slog.Logger
	Network transport.Network // nil means ZeroMQ, owned by the client
}

// SSHOptions tune the ssh tunnel to the controller. The zero value runs
// the system's ssh with the user's own configuration (~/.ssh/config,
// agent, ProxyJump), or, without an ssh command, the built-in one.
type SSHOptions struct {
	// Builtin speaks ssh in Go rather than running the ssh command: the
	// agent, IdentityFile or ~/.ssh/id_*, and keyboard-interactive
	// answers from Prompt; host keys from known_hosts, an unknown one
	// refused with how to accept it.
	Builtin      bool
	IdentityFile string   // a private key to offer
	KnownHosts   []string // known_hosts files (default ~/.ssh/known_hosts)
	// Args are extra arguments for the ssh command, such as
	// "-o", "ProxyJump=gateway".
	Args []string
	// Prompt answers the built-in ssh's questions (a password, a
	// one-time code); nil refuses them.
	Prompt func(question string, echo bool) (string, error)
	// OnDrop, if set, is told when the tunnel drops; it is rebuilt on
	// the same local port, and the client reconnects through it.
	OnDrop func(error)
}

// Output is a chunk of a task's standard output or error.
type Output struct {
	Engine int
	TaskID string
	Stream string // "stdout" or "stderr"
	Data   []byte
}

// Client is a connection to a controller.
type Client struct {
	opts    Options
	log     *slog.Logger
	conn    *wire.ConnectionInfo
	net     transport.Network
	ownNet  bool
	sock    transport.Socket // its routing id is the session id; sends go through courier
	courier *courier.Courier
	poller  transport.Poller
	session *wire.Session
	signer  *wire.Signer   // the connection's leader only
	tunnel  *tunnel.Tunnel // to the controller, if through ssh

	mu      sync.Mutex
	pending map[string]waiter // by request id
	engines registry
	changed chan struct{} // closed, and replaced, when engines changes
	closing bool
	err     error // why the client stopped

	ioDone chan struct{}
}

// waiter is whoever waits for the replies to one request.
type waiter interface {
	// deliver takes one message answering the request and reports whether
	// the request is complete.
	deliver(m *wire.Message) bool
	// fail ends the request with err.
	fail(err error)
	// requests returns the ids of the messages the waiter waits on.
	requests() []string
}

// Connect connects to a controller and waits for its greeting, which lists
// the engines.
func Connect(ctx context.Context, opts Options) (*Client, error) {
	ci, err := resolveConnection(opts)
	if err != nil {
		return nil, err
	}
	if ci.Role != wire.RoleClient {
		return nil, fmt.Errorf("client: the connection info is for an %s, not a client", ci.Role)
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{opts: opts, log: opts.Logger, conn: ci, net: opts.Network, session: wire.NewSession(),
		signer: wire.NewSigner(ci.SigningKey()), pending: make(map[string]waiter),
		engines: make(registry), changed: make(chan struct{}), ioDone: make(chan struct{})}
	if server := cmp.Or(opts.SSHServer, ci.SSHServer); server != "" {
		if err := c.openTunnel(ctx, server); err != nil {
			return nil, err
		}
		ci = c.conn // the tunnel's end
	}
	if c.net == nil {
		n, err := zmqnet.New(zmqnet.Options{})
		if err != nil {
			c.release()
			return nil, err
		}
		c.net, c.ownNet = n, true
	}
	// One socket, whose routing id, the session id, is how the controller
	// addresses this client: the goroutine that leads its poller receives,
	// and any goroutine that calls sends (through the courier), at once.
	sec := &transport.ClientSecurity{ServerKey: ci.ControllerKey, Public: ci.Public, Secret: ci.Secret}
	c.sock, err = c.net.Dial(ci.Endpoint, []byte(c.session.ID()), sec)
	if err == nil {
		c.poller, err = c.net.NewPoller(c.sock)
	}
	if err != nil {
		c.release()
		return nil, err
	}
	c.courier = courier.New(c.sock, c.session, wire.NewSigner(ci.SigningKey()), c.poller.Wake, c.log)

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	// The Connect request is the first message: the controller learns of
	// the client from it.
	hello := &wire.Message{Header: c.session.Header(wire.Connect)}
	w := &controlWaiter{id: hello.ID, done: make(chan struct{})}
	c.pending[hello.ID] = w
	c.session.Stamp(&hello.Header)
	if err := c.sock.Send(c.signer.Seal(hello)); err != nil {
		c.release()
		return nil, fmt.Errorf("client: %w", err)
	}
	go c.loop()
	var reply wire.ConnectReplyContent
	err = w.wait(ctx, c, &reply)
	if err != nil {
		c.Close()
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("client: no answer from the controller at %s: is the cluster running (ipcluster start)? "+
				"A controller restarted since the connection file was read refuses its old keys", ci.Endpoint)
		}
		return nil, fmt.Errorf("client: connecting to %s: %w", ci.Endpoint, err)
	}
	c.mu.Lock()
	for _, e := range reply.Engines {
		c.engines[e.ID] = e
	}
	c.enginesChanged()
	c.mu.Unlock()
	return c, nil
}

func resolveConnection(opts Options) (*wire.ConnectionInfo, error) {
	if opts.Connection != nil {
		return opts.Connection, opts.Connection.Check()
	}
	path := opts.ConnectionFile
	if path == "" {
		name := opts.Profile
		if name == "" {
			name = os.Getenv("IPCLUSTER_PROFILE")
		}
		p, err := profile.Open(name)
		if err != nil {
			return nil, err
		}
		path = p.ClientFile()
		ci, err := wire.ReadConnectionFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("client: no cluster is running for profile %q (%s does not exist); start one with: ipcluster start",
				p.Name, path)
		}
		return ci, err
	}
	return wire.ReadConnectionFile(path)
}

// Close disconnects. Requests still waiting fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		<-c.ioDone
		return nil
	}
	c.closing = true
	c.mu.Unlock()
	c.poller.Wake()
	<-c.ioDone
	c.release()
	return nil
}

func (c *Client) release() {
	if c.poller != nil {
		c.poller.Close()
	}
	if c.sock != nil {
		c.sock.Close()
	}
	if c.ownNet && c.net != nil {
		c.net.Close()
	}
	if c.tunnel != nil {
		c.tunnel.Close()
	}
}

// openTunnel forwards a local port to the controller through an ssh
// server, and points the client's connection at it.
func (c *Client) openTunnel(ctx context.Context, server string) error {
	o := c.opts.SSH
	mode := tunnel.Auto
	if o.Builtin {
		mode = tunnel.Builtin
	}
	t, local, err := tunnel.OpenEndpoint(ctx, tunnel.Options{Server: server, Mode: mode, IdentityFile: o.IdentityFile,
		KnownHosts: o.KnownHosts, SSHArgs: o.Args, Prompt: o.Prompt, Logger: c.log, OnDrop: o.OnDrop}, c.conn.Endpoint)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	c.tunnel = t
	ci := *c.conn
	ci.Endpoint = local
	c.conn = &ci
	return nil
}

// Endpoint returns the controller's address the client is connected to.
func (c *Client) Endpoint() string { return c.conn.Endpoint }

// IDs returns the ids of the registered engines, sorted, as last told by
// the controller.
func (c *Client) IDs() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.engines))
}

// WaitForEngines waits until at least n engines are registered, as the
// controller tells the client when each registers; it returns at once if
// they already are. It fails when ctx ends or the client stops.
func (c *Client) WaitForEngines(ctx context.Context, n int) error {
	return c.waitFor(ctx, func(r registry) (bool, string) {
		return len(r) >= n, fmt.Sprintf("waiting for %d engines (%d registered)", n, len(r))
	})
}

// waitFor waits until done holds for the registered engines; done also
// says what is awaited, for errors.
func (c *Client) waitFor(ctx context.Context, done func(registry) (bool, string)) error {
	for {
		c.mu.Lock()
		ok, what := done(c.engines)
		changed, err := c.changed, c.err
		c.mu.Unlock()
		switch {
		case ok:
			return nil
		case err != nil:
			return fmt.Errorf("client: %s: %w", what, err)
		}
		select {
		case <-changed:
		case <-c.ioDone:
			c.mu.Lock()
			err := c.err
			c.mu.Unlock()
			if err == nil {
				err = ErrClosed
			}
			return fmt.Errorf("client: %s: %w", what, err)
		case <-ctx.Done():
			return fmt.Errorf("client: %s: %w", what, context.Cause(ctx))
		}
	}
}

// enginesChanged wakes WaitForEngines; c.mu is held.
func (c *Client) enginesChanged() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Engines asks the controller for the engines and their state.
func (c *Client) Engines(ctx context.Context) ([]wire.EngineInfo, error) {
	var reply wire.EnginesReplyContent
	if err := c.control(ctx, wire.Engines, nil, nil, &reply); err != nil {
		return nil, err
	}
	c.mu.Lock()
	clear(c.engines)
	for _, e := range reply.Engines {
		c.engines[e.ID] = e
	}
	c.enginesChanged()
	c.mu.Unlock()
	return reply.Engines, nil
}

// TaskStatus asks the controller where the tasks of the given request ids
// are: pending, queued or running on an engine, or finished. Any client
// may ask about any request.
func (c *Client) TaskStatus(ctx context.Context, ids ...string) ([]wire.TaskInfo, error) {
	var reply wire.TaskStatusReplyContent
	err := c.control(ctx, wire.TaskStatus, nil, wire.IDsContent{IDs: ids}, &reply)
	return reply.Tasks, err
}

// Abort removes the tasks of the given request ids from the queues they
// wait in; tasks already running are not stopped (see Interrupt). Their
// results fail with *AbortedError.
func (c *Client) Abort(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return errors.New("client: Abort needs request ids")
	}
	return c.control(ctx, wire.Abort, nil, wire.IDsContent{IDs: ids}, nil)
}

// Interrupt stops the task running on each target engine; its context is
// cancelled and the task fails with a RemoteError of type "Interrupted".
func (c *Client) Interrupt(ctx context.Context, t Target) error {
	ids, err := c.resolve(t)
	if err != nil {
		return err
	}
	return c.control(ctx, wire.Interrupt, ids, nil, nil)
}

// Shutdown stops the target engines.
func (c *Client) Shutdown(ctx context.Context, t Target) error {
	ids, err := c.resolve(t)
	if err != nil {
		return err
	}
	return c.control(ctx, wire.Shutdown, ids, wire.ShutdownContent{}, nil)
}

// ShutdownCluster stops the controller and all its engines.
func (c *Client) ShutdownCluster(ctx context.Context) error {
	return c.control(ctx, wire.Shutdown, nil, wire.ShutdownContent{Controller: true}, nil)
}

// Apply calls the registered function fn with args on each target engine
// (All unless Targets says otherwise) and waits for the results, keyed by
// engine id. With Balanced, one engine chosen by the scheduler runs it.
func (c *Client) Apply(ctx context.Context, fn string, args []any, opts ...Option) (map[int]any, error) {
	o := callOptions{targets: All}
	for _, opt := range opts {
		opt.apply(&o)
	}
	var ar *AsyncResult
	var err error
	if o.balanced {
		v := c.LoadBalancedView()
		v.targets, v.opts = o.targets, o
		if o.targets == All {
			v.targets = nil
		}
		ar, err = v.Apply(ctx, fn, args...)
	} else {
		v := c.DirectView(o.targets)
		v.opts = o
		ar, err = v.Apply(ctx, fn, args...)
	}
	if err != nil {
		return nil, err
	}
	return ar.Get(ctx)
}

// resolve returns the engine ids a target names now.
func (c *Client) resolve(t Target) ([]int, error) {
	if t == nil {
		t = All
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return t.resolve(c.engines)
}

// control sends a request to the controller and decodes its reply into
// out (if not nil).
func (c *Client) control(ctx context.Context, t wire.Type, targets []int, content, out any) error {
	h := c.session.Header(t)
	h.Targets = targets
	m := &wire.Message{Header: h}
	if content != nil {
		body, err := wire.EncodeContent(content)
		if err != nil {
			return err
		}
		m.Content = body
	}
	w := &controlWaiter{id: m.ID, done: make(chan struct{})}
	if err := c.submit(w, m); err != nil {
		return err
	}
	return w.wait(ctx, c, out)
}

type controlWaiter struct {
	id    string
	done  chan struct{}
	reply *wire.Message
	err   error
}

func (w *controlWaiter) requests() []string { return []string{w.id} }

// wait waits for the reply and decodes its content into out, if not nil.
func (w *controlWaiter) wait(ctx context.Context, c *Client, out any) error {
	if err := c.await(ctx, w.done); err != nil {
		c.forget(w.id)
		return err
	}
	if w.err != nil {
		return w.err
	}
	if out != nil && w.reply.Content != nil {
		return wire.DecodeContent(w.reply, out)
	}
	return nil
}

func (w *controlWaiter) deliver(m *wire.Message) bool {
	if m.Type == wire.Error {
		var info wire.ErrorInfo
		wire.DecodeContent(m, &info)
		w.err = &ControllerError{Type: info.Type, Message: info.Message}
	}
	w.reply = m
	close(w.done)
	return true
}

func (w *controlWaiter) fail(err error) {
	w.err = err
	close(w.done)
}

// submit registers w for the replies to each message and sends them.
func (c *Client) submit(w waiter, msgs ...*wire.Message) error {
	c.mu.Lock()
	if c.closing || c.err != nil {
		err := c.err
		c.mu.Unlock()
		if err == nil {
			err = ErrClosed
		}
		return err
	}
	for _, m := range msgs {
		c.pending[m.ID] = w
	}
	c.mu.Unlock()
	c.courier.Send(msgs...)
	return nil
}

func (c *Client) forget(id string) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// loop is the I/O goroutine. It follows (see transport.Poller): it reads
// the connection only when something comes while no caller waiting for a
// reply reads it.
func (c *Client) loop() {
	defer close(c.ioDone)
	for {
		if err := c.poller.Follow(); err != nil {
			c.stop(fmt.Errorf("client: %w", err))
			return
		}
		ok := c.step(0)
		c.poller.Unlead()
		if !ok {
			return
		}
	}
}

// await waits until done is closed or ctx ends. While nobody else reads
// the connection, the caller reads it itself, so that its reply reaches it
// with no hand-over between goroutines.
func (c *Client) await(ctx context.Context, done <-chan struct{}) error {
	if !closed(done) && c.poller.TryLead() {
		c.readUntil(ctx, done)
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// readUntil reads the connection as its leader until done is closed, ctx
// ends or the client stops, and then lets go of the lead.
func (c *Client) readUntil(ctx context.Context, done <-chan struct{}) {
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, c.poller.Wake)
		defer stop()
	}
	stopped := false
	for !stopped && !closed(done) && ctx.Err() == nil {
		stopped = !c.step(-1)
	}
	c.poller.Unlead()
	if stopped {
		c.poller.Wake() // the I/O goroutine, to see that the client stopped
	}
}

// closed reports whether ch is closed.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// step is one turn of the connection's leader: it waits up to timeout,
// hands out what the controller sent, and sends what the courier holds. It
// reports false once the client has stopped.
func (c *Client) step(timeout time.Duration) bool {
	c.mu.Lock()
	stopped := c.err != nil
	c.mu.Unlock()
	if stopped {
		return false
	}
	if _, err := c.poller.Wait(timeout); err != nil {
		c.stop(fmt.Errorf("client: %w", err))
		return false
	}
	for {
		frames, err := c.sock.Recv()
		if errors.Is(err, transport.ErrAgain) {
			break
		}
		if err != nil {
			c.stop(fmt.Errorf("client: %w", err))
			return false
		}
		c.handle(frames)
	}
	c.mu.Lock()
	closing := c.closing
	c.mu.Unlock()
	if closing {
		c.courier.Flush(&wire.Message{Header: c.session.Header(wire.Disconnect)})
		c.stop(ErrClosed)
		return false
	}
	c.courier.Flush()
	return true
}

// stop fails everything pending.
func (c *Client) stop(err error) {
	c.mu.Lock()
	c.err = err
	pending := c.pending
	c.pending = make(map[string]waiter)
	c.mu.Unlock()
	seen := make(map[waiter]bool)
	for _, w := range pending {
		if !seen[w] {
			seen[w] = true
			w.fail(err)
		}
	}
}

// handle routes what the controller sent: one message or a batch.
func (c *Client) handle(frames [][]byte) {
	msgs, err := c.signer.OpenAll(frames, true)
	if err != nil {
		c.log.Warn("refused a message from the controller", "reason", err)
		return
	}
	for _, m := range msgs {
		c.handleOne(m)
	}
}

func (c *Client) handleOne(m *wire.Message) {
	switch m.Type {
	case wire.EngineEvent:
		var ev wire.EngineEventContent
		if err := wire.DecodeContent(m, &ev); err != nil {
			c.log.Warn("bad engine event", "err", err)
			return
		}
		c.mu.Lock()
		if ev.Event == wire.EventRegistered {
			c.engines[ev.Engine.ID] = ev.Engine
		} else {
			delete(c.engines, ev.Engine.ID)
		}
		c.enginesChanged()
		c.mu.Unlock()
		return
	case wire.Output:
		var chunk wire.OutputChunk
		if err := wire.DecodeContent(m, &chunk); err != nil {
			return
		}
		out := Output{Engine: m.Engine, TaskID: m.Parent, Stream: chunk.Stream, Data: chunk.Data}
		c.mu.Lock()
		w := c.pending[m.Parent]
		c.mu.Unlock()
		if ar, ok := w.(*AsyncResult); ok {
			ar.output(out)
		}
		if c.opts.OnOutput != nil {
			c.opts.OnOutput(out)
		}
		return
	}
	if m.Parent == "" {
		if m.Type == wire.Error {
			var info wire.ErrorInfo
			wire.DecodeContent(m, &info)
			c.log.Warn("the controller reported an error", "type", info.Type, "message", info.Message)
		}
		return
	}
	c.mu.Lock()
	w := c.pending[m.Parent]
	c.mu.Unlock()
	if w == nil {
		c.log.Debug("dropped a reply nobody waits for", "type", m.Type, "parent", m.Parent)
		return
	}
	if w.deliver(m) {
		c.mu.Lock()
		for _, id := range w.requests() {
			delete(c.pending, id)
		}
		c.mu.Unlock()
	}
}
