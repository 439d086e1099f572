// Package controller is the hub of a cluster: one process that engines
// register with and clients send work to.
//
// The controller binds two Router sockets: one for clients and one for
// engines, each admitting only the CURVE key issued for its role. One
// goroutine owns both sockets. It decodes only envelopes: work requests
// and their results pass through with their signature re-made for the
// other side, and their buffers (bulk data) are relayed without being read.
// Bookkeeping is kept to ids, states and timings; results are kept only
// for clients that went away before they arrived, up to a bound.
//
// Load-balanced work is placed by package scheduler, a pure state machine;
// the rest of the controller's logic (registration, heartbeats, routing,
// retries, aborts) lives in core, which the I/O loop drives and tests drive
// directly.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ipcluster/ipcluster/controller/scheduler"
	"github.com/ipcluster/ipcluster/transport"
	"github.com/ipcluster/ipcluster/transport/zmqnet"
	"github.com/ipcluster/ipcluster/wire"
)

// Config configures a controller. The zero value of a field means its default.
type Config struct {
	IP         string // interface to listen on; default 127.0.0.1
	ClientPort int    // 0 picks a free port
	EnginePort int    // 0 picks a free port
	// Location is the host name written into connection files when IP is
	// a wildcard; default os.Hostname.
	Location string

	HeartbeatPeriod time.Duration // default 1s
	HeartbeatMisses int           // an engine silent this many periods is dead; default 3

	Scheduler     scheduler.Policy // default least-load
	PipelineDepth int              // most balanced tasks outstanding per engine; default 256

	ResultCache      int   // results kept for clients that are gone; default 10000
	ResultCacheBytes int64 // default 1 GiB
	TaskHistory      int   // finished tasks remembered for status queries; default 100000

	// StopTimeout bounds how long the controller waits for engines to
	// acknowledge a shutdown; default 3s.
	StopTimeout time.Duration

	Profile string // written into connection files
	Logger  *slog.Logger
	// Network carries the sockets; nil means ZeroMQ, owned by the controller.
	Network transport.Network
}

func (cfg *Config) setDefaults() error {
	if cfg.IP == "" {
		cfg.IP = "127.0.0.1"
	}
	if cfg.HeartbeatPeriod == 0 {
		cfg.HeartbeatPeriod = time.Second
	}
	if cfg.HeartbeatMisses == 0 {
		cfg.HeartbeatMisses = 3
	}
	if cfg.PipelineDepth == 0 {
		cfg.PipelineDepth = 256
	}
	if cfg.ResultCache == 0 {
		cfg.ResultCache = 10000
	}
	if cfg.ResultCacheBytes == 0 {
		cfg.ResultCacheBytes = 1 << 30
	}
	if cfg.TaskHistory == 0 {
		cfg.TaskHistory = 100000
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.HeartbeatPeriod < 0:
		return fmt.Errorf("controller: heartbeat period %v must be positive", cfg.HeartbeatPeriod)
	case cfg.HeartbeatMisses < 1:
		return fmt.Errorf("controller: heartbeat misses %d must be at least 1", cfg.HeartbeatMisses)
	case cfg.PipelineDepth < 2:
		return fmt.Errorf("controller: pipeline depth %d must be at least 2", cfg.PipelineDepth)
	case cfg.ClientPort < 0 || cfg.ClientPort > 65535:
		return fmt.Errorf("controller: client port %d out of range", cfg.ClientPort)
	case cfg.EnginePort < 0 || cfg.EnginePort > 65535:
		return fmt.Errorf("controller: engine port %d out of range", cfg.EnginePort)
	}
	return nil
}

// Controller is a running controller's handle.
type Controller struct {
	cfg        Config
	net        transport.Network
	ownNet     bool
	clientSock transport.Socket
	engineSock transport.Socket
	poller     transport.Poller
	clientInfo *wire.ConnectionInfo
	engineInfo *wire.ConnectionInfo
	core       *core

	mu      sync.Mutex
	count   int           // registered engines
	changed chan struct{} // closed and replaced when count changes
	runDone chan struct{}
}

// New makes a controller: it generates the cluster's keys and binds both
// sockets. Call Run to serve.
func New(cfg Config) (*Controller, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	server, err := wire.NewKeyPair()
	if err != nil {
		return nil, err
	}
	clientKeys, err := wire.NewKeyPair()
	if err != nil {
		return nil, err
	}
	engineKeys, err := wire.NewKeyPair()
	if err != nil {
		return nil, err
	}
	c := &Controller{cfg: cfg, net: cfg.Network, changed: make(chan struct{}), runDone: make(chan struct{})}
	if c.net == nil {
		n, err := zmqnet.New(zmqnet.Options{})
		if err != nil {
			return nil, err
		}
		c.net, c.ownNet = n, true
	}
	fail := func(err error) (*Controller, error) {
		c.closeSockets()
		return nil, err
	}
	log := cfg.Logger
	refused := func(domain, addr, reason string) {
		log.Warn("refused a connection", "port", domain, "address", addr, "reason", reason)
	}
	host := cfg.IP
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	c.clientSock, c.clientInfo, err = c.bind("client", host, cfg.ClientPort, server, clientKeys, refused)
	if err != nil {
		return fail(err)
	}
	c.engineSock, c.engineInfo, err = c.bind("engine", host, cfg.EnginePort, server, engineKeys, refused)
	if err != nil {
		return fail(err)
	}
	c.poller, err = c.net.NewPoller(c.clientSock, c.engineSock)
	if err != nil {
		return fail(err)
	}
	sched, err := scheduler.New(scheduler.Config{Policy: cfg.Scheduler, MaxDepth: cfg.PipelineDepth})
	if err != nil {
		return fail(err)
	}
	clusterID := c.clientInfo.ClusterID
	c.core = newCore(&cfg, clusterID, sched, c.clientInfo.SigningKey(), c.engineInfo.SigningKey())
	c.core.onCount = c.setCount
	return c, nil
}

// bind makes one Router socket and the connection info for its role.
func (c *Controller) bind(role, host string, port int, server, peer wire.KeyPair,
	refused func(domain, addr, reason string)) (transport.Socket, *wire.ConnectionInfo, error) {
	sec := &transport.ServerSecurity{
		Public: server.Public, Secret: server.Secret, Domain: role,
		Allow:    func(k string) bool { return k == peer.Public },
		OnRefuse: refused,
	}
	sock, bound, err := c.net.Bind(fmt.Sprintf("tcp://%s:%d", host, port), sec)
	if err != nil {
		return nil, nil, fmt.Errorf("controller: %s port: %w", role, err)
	}
	info := &wire.ConnectionInfo{
		Version: wire.Version, Role: wire.Role(role), Endpoint: c.advertised(bound),
		ControllerKey: server.Public, KeyPair: peer, HMACKey: wire.NewHMACKey(),
		Location: c.location(), Profile: c.cfg.Profile, ControllerPID: os.Getpid(),
	}
	if c.clientInfo != nil {
		info.ClusterID = c.clientInfo.ClusterID
	} else {
		info.ClusterID = wire.NewSession().ID()[:16]
	}
	return sock, info, nil
}

func (c *Controller) location() string {
	if c.cfg.Location != "" {
		return c.cfg.Location
	}
	h, _ := os.Hostname()
	return h
}

// advertised turns a bound endpoint into one peers can dial: a wildcard
// address is replaced by the location.
func (c *Controller) advertised(bound string) string {
	rest, ok := strings.CutPrefix(bound, "tcp://")
	if !ok {
		return bound
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		return bound
	}
	if ip := net.ParseIP(host); host == "*" || (ip != nil && ip.IsUnspecified()) {
		return "tcp://" + net.JoinHostPort(c.location(), port)
	}
	return bound
}

// ClientInfo returns the credential clients connect with.
func (c *Controller) ClientInfo() *wire.ConnectionInfo { return c.clientInfo }

// EngineInfo returns the credential engines connect with.
func (c *Controller) EngineInfo() *wire.ConnectionInfo { return c.engineInfo }

// EngineCount returns the number of registered engines.
func (c *Controller) EngineCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count
}

// WaitEngines waits until at least n engines are registered.
func (c *Controller) WaitEngines(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		count, ch := c.count, c.changed
		c.mu.Unlock()
		if count >= n {
			return nil
		}
		select {
		case <-ch:
		case <-c.runDone:
			return errors.New("controller: stopped")
		case <-ctx.Done():
			return fmt.Errorf("%d of %d engines registered: %w", count, n, ctx.Err())
		}
	}
}

func (c *Controller) setCount(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n != c.count {
		c.count = n
		close(c.changed)
		c.changed = make(chan struct{})
	}
}

// Run serves until ctx is done or a client asks the controller to shut
// down, then tells engines to stop, waits for them up to the stop timeout,
// and closes the sockets. It returns nil after an orderly shutdown.
func (c *Controller) Run(ctx context.Context) error {
	defer close(c.runDone)
	defer c.closeSockets()
	stop := context.AfterFunc(ctx, c.poller.Wake)
	defer stop()
	// This goroutine alone uses the sockets: it leads their poller for
	// good, so that its sends need no look for an edge they may have taken
	// (its own Wait looks).
	c.poller.TryLead()
	k := c.core
	var out [][]byte // the routing id, then the frames; the socket copies them
	var id []byte
	send := func(engine bool, rid string, frames [][]byte) error {
		sock := c.clientSock
		if engine {
			sock = c.engineSock
		}
		id = append(id[:0], rid...)
		out = append(append(out[:0], id), frames...)
		err := sock.Send(out)
		clear(out) // keep no message alive
		return err
	}
	k.log.Info("controller listening", "clients", c.clientInfo.Endpoint, "engines", c.engineInfo.Endpoint)
	const batch = 256 // messages taken from one socket before looking at the other
	for {
		now := time.Now()
		k.now = now
		if ctx.Err() != nil && !k.stopping {
			k.beginShutdown("controller stopped")
		}
		if k.stopping && (len(k.engines) == 0 || now.After(k.stopDeadline)) {
			if len(k.engines) > 0 {
				k.log.Warn("engines did not acknowledge the shutdown", "count", len(k.engines))
			}
			k.finish()
			k.flush(send)
			return nil
		}
		ready, err := c.poller.Wait(k.nextTimeout())
		if err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		k.now = time.Now()
		drained := true
		for i, sock := range []transport.Socket{c.clientSock, c.engineSock} {
			if !ready[i] {
				continue
			}
			n := 0
			for ; n < batch; n++ {
				msg, err := sock.Recv()
				if errors.Is(err, transport.ErrAgain) {
					break
				}
				if err != nil {
					return fmt.Errorf("controller: %w", err)
				}
				if len(msg) < 2 {
					continue // a routing id alone: nothing to answer
				}
				if i == 0 {
					k.handleClient(string(msg[0]), msg[1:])
				} else {
					k.handleEngine(string(msg[0]), msg[1:])
				}
			}
			if n == batch {
				drained = false // more may wait: the next Wait returns at once
			}
		}
		k.tick(drained)
		k.flush(send)
	}
}

func (c *Controller) closeSockets() {
	if c.poller != nil {
		c.poller.Close()
	}
	for _, s := range []transport.Socket{c.clientSock, c.engineSock} {
		if s != nil {
			s.Close()
		}
	}
	if c.ownNet && c.net != nil {
		c.net.Close()
	}
}
