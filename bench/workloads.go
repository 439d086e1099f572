package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/engine"
	"github.com/ipcluster/ipcluster/internal/profile"
	"github.com/ipcluster/ipcluster/internal/testenv"
	"github.com/ipcluster/ipcluster/wire"
)

// cluster is an ipcluster cluster started with the ipcluster command, as
// a user starts one: controller and engines are separate processes.
type cluster struct {
	bin     string
	env     []string
	client  *client.Client
	dir     string
	stopped bool
}

// startCluster runs `ipcluster start -n N --daemon` in a private profile
// directory and connects a client.
func (b *bench) startCluster(n int) (*cluster, error) {
	dir, err := os.MkdirTemp("", "ipbench-")
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: b.bin, dir: dir, env: append(b.clusterEnv(), "IPCLUSTER_DIR="+dir, "IPCLUSTER_PROFILE=bench")}
	if out, err := c.run("start", "-n", fmt.Sprint(n), "--daemon"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("ipcluster start: %v: %s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.client, err = client.Connect(ctx, client.Options{ConnectionFile: filepath.Join(dir, "bench", "security", "client.json")})
	if err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func (c *cluster) run(args ...string) (string, error) {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), c.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// stop stops the cluster, once.
func (c *cluster) stop() {
	if c.stopped {
		return
	}
	c.stopped = true
	if c.client != nil {
		c.client.Close()
	}
	c.run("stop")
	os.RemoveAll(c.dir)
}

// ipRTT measures n sequential direct applies of noop on engine 0:
// p50 and p99 in microseconds.
func ipRTT(ctx context.Context, c *client.Client, n int) (p50, p99 float64, err error) {
	dv := c.DirectView(client.Engines(c.IDs()[0]))
	lat := make([]float64, 0, n)
	for range n {
		t0 := time.Now()
		r, err := dv.Apply(ctx, "noop")
		if err != nil {
			return 0, 0, err
		}
		if _, err := r.Value(ctx); err != nil {
			return 0, 0, err
		}
		lat = append(lat, float64(time.Since(t0).Nanoseconds())/1e3)
	}
	return median(lat), percentile(lat, 99), nil
}

// ipLB submits n noop tasks, one per submission, then waits for all:
// tasks per second.
func ipLB(ctx context.Context, c *client.Client, n int) (float64, error) {
	lv := c.LoadBalancedView()
	rs := make([]*client.AsyncResult, n)
	t0 := time.Now()
	for i := range rs {
		var err error
		if rs[i], err = lv.Apply(ctx, "noop"); err != nil {
			return 0, err
		}
	}
	for _, r := range rs {
		if _, err := r.Value(ctx); err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(t0).Seconds(), nil
}

// ipMap maps echo over n small ints with automatic chunking: items per second.
func ipMap(ctx context.Context, c *client.Client, n int) (float64, error) {
	items := make([]int, n)
	for i := range items {
		items[i] = i
	}
	t0 := time.Now()
	m, err := c.LoadBalancedView().Map(ctx, "echo", items)
	if err != nil {
		return 0, err
	}
	got, err := m.Get(ctx)
	if err != nil {
		return 0, err
	}
	d := time.Since(t0)
	if len(got) != n || got[n-1] != int64(n-1) {
		return 0, errors.New("map returned wrong results")
	}
	return float64(n) / d.Seconds(), nil
}

// ipPushPull pushes a float64 array of size bytes to engine 0 and pulls it
// back: GB/s each way.
func ipPushPull(ctx context.Context, c *client.Client, size int) (push, pull float64, err error) {
	dv := c.DirectView(client.Engines(c.IDs()[0]))
	data := make([]float64, size/8)
	for i := range data {
		data[i] = float64(i)
	}
	t0 := time.Now()
	r, err := dv.Push(ctx, map[string]any{"x": data})
	if err != nil {
		return 0, 0, err
	}
	if _, err := r.Get(ctx); err != nil {
		return 0, 0, err
	}
	push = float64(size) / time.Since(t0).Seconds() / 1e9
	t0 = time.Now()
	r, err = dv.Pull(ctx, "x")
	if err != nil {
		return 0, 0, err
	}
	back, err := client.Result[[]float64](ctx, r)
	if err != nil {
		return 0, 0, err
	}
	pull = float64(size) / time.Since(t0).Seconds() / 1e9
	if len(back) != len(data) || back[len(back)-1] != data[len(data)-1] {
		return 0, 0, errors.New("pulled data differs")
	}
	return push, pull, nil
}

// ipStartup times `ipcluster start -n engines --daemon` (or `ipcluster
// mpiexec`, with command "mpiexec"), which returns once every engine has
// registered: seconds.
func (b *bench) ipStartup(command string, engines int) (float64, error) {
	dir, err := os.MkdirTemp("", "ipbench-start-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	c := &cluster{bin: b.bin, dir: dir, env: append(b.clusterEnv(), "IPCLUSTER_DIR="+dir, "IPCLUSTER_PROFILE=bench")}
	t0 := time.Now()
	out, err := c.run(command, "-n", fmt.Sprint(engines), "--daemon")
	d := time.Since(t0)
	c.run("stop")
	if err != nil {
		return 0, fmt.Errorf("ipcluster %s: %v: %s", command, err, out)
	}
	return d.Seconds(), nil
}

// mpiInitC is the smallest MPI program: what every rank of an MPI job pays.
const mpiInitC = `#include <mpi.h>
int main(int argc, char **argv) {
	int provided;
	MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
	MPI_Finalize();
	return 0;
}
`

// mpiexecLimit times mpiexec running, as ranks, a C program that only
// initialises and finalises MPI, with the flags ipcluster mpiexec gives
// Open MPI on this machine: seconds. MPI_Init's own collective start-up
// is most of the time ipcluster mpiexec takes.
func mpiexecLimit(ranks int) (float64, error) {
	dir, err := os.MkdirTemp("", "ipbench-mpi-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	src, prog := filepath.Join(dir, "init.c"), filepath.Join(dir, "init")
	if err := os.WriteFile(src, []byte(mpiInitC), 0o600); err != nil {
		return 0, err
	}
	if out, err := exec.Command("mpicc", "-o", prog, src).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("mpicc: %v: %s", err, out)
	}
	args := []string{"-n", fmt.Sprint(ranks), "--oversubscribe"}
	if os.Geteuid() == 0 {
		args = append(args, "--allow-run-as-root")
	}
	cmd := exec.Command("mpiexec", append(args, prog)...)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("mpiexec: %v: %s", err, out)
	}
	return time.Since(t0).Seconds(), nil
}

// ipShellFarm runs n `sh -c true` through the sh builtin as a
// load-balanced map: seconds.
func ipShellFarm(ctx context.Context, c *client.Client, n int) (float64, error) {
	cmds := make([]string, n)
	for i := range cmds {
		cmds[i] = "true"
	}
	t0 := time.Now()
	m, err := c.LoadBalancedView().Map(ctx, "sh", cmds)
	if err != nil {
		return 0, err
	}
	res, err := client.Collect[engine.ShellResult](ctx, m)
	if err != nil {
		return 0, err
	}
	d := time.Since(t0)
	for _, r := range res {
		if r.Exit != 0 {
			return 0, fmt.Errorf("sh true exited %d", r.Exit)
		}
	}
	return d.Seconds(), nil
}

// shellLimit times n `sh -c true` run two at a time by a command line.
func shellLimit(n int, command string) (float64, error) {
	cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf("seq %d | %s", n, command))
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%s: %v: %s", command, err, out)
	}
	return time.Since(t0).Seconds(), nil
}

// res7 is one run of workload 7.
type res7 struct {
	register float64   // seconds until every engine has registered
	apply    []float64 // milliseconds per 1 KB apply to all
	// CPU time per apply, in milliseconds, of the controller and of the
	// engines' processes (all their threads: libzmq's included).
	ctrlCPU, hostCPU float64
}

// ipScale starts a controller, then engines in hosts processes of perHost
// engines each; it times their registration, then applies 1 KB direct
// applies to all.
func (b *bench) ipScale(hosts, perHost, applies int) (r res7, err error) {
	dir, err := os.MkdirTemp("", "ipbench-scale-")
	if err != nil {
		return res7{}, err
	}
	defer os.RemoveAll(dir)
	env := append(b.clusterEnv(), "IPCLUSTER_DIR="+dir, "IPCLUSTER_PROFILE=bench")
	ctrl := exec.Command(b.bin, "controller")
	ctrl.Env = append(os.Environ(), env...)
	ctrlOut := &strings.Builder{}
	ctrl.Stdout = ctrlOut
	if err := ctrl.Start(); err != nil {
		return res7{}, err
	}
	defer func() { ctrl.Process.Signal(os.Interrupt); ctrl.Wait() }()
	engineFile := filepath.Join(dir, "bench", "security", "engine.json")
	clientFile := filepath.Join(dir, "bench", "security", "client.json")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if fileExists(clientFile) && fileExists(engineFile) {
			break
		}
		if time.Now().After(deadline) {
			return res7{}, fmt.Errorf("the controller did not start: %s", ctrlOut)
		}
	}
	ci, err := wire.ReadConnectionFile(engineFile)
	if err != nil {
		return res7{}, err
	}
	conn, _ := ci.Marshal()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, client.Options{ConnectionFile: clientFile})
	if err != nil {
		return res7{}, err
	}
	defer c.Close()

	self, _ := os.Executable()
	total := hosts * perHost
	t0 := time.Now()
	var hostCmds []*exec.Cmd
	defer func() {
		for _, h := range hostCmds {
			h.Process.Signal(os.Interrupt)
			h.Wait()
		}
	}()
	for range hosts {
		h := exec.Command(self, "engines-host", fmt.Sprint(perHost))
		h.Env = append(append(os.Environ(), b.clusterEnv()...), engine.ConnectionEnv+"="+string(conn))
		h.Stderr = os.Stderr
		if err := h.Start(); err != nil {
			return res7{}, err
		}
		hostCmds = append(hostCmds, h)
	}
	if err := c.WaitForEngines(ctx, total); err != nil {
		return res7{}, err
	}
	r.register = time.Since(t0).Seconds()
	payload := make([]byte, 1024)
	cpu := func() (ctrlT, hostT float64) {
		ctrlT = cpuSeconds(ctrl.Process.Pid)
		for _, h := range hostCmds {
			hostT += cpuSeconds(h.Process.Pid)
		}
		return
	}
	c0, h0 := cpu()
	for range applies + 1 {
		t0 := time.Now()
		res, err := c.Apply(ctx, "echo", []any{payload}, client.Targets(client.All))
		if err != nil {
			return res7{}, err
		}
		if len(res) != total {
			return res7{}, fmt.Errorf("%d replies from %d engines", len(res), total)
		}
		r.apply = append(r.apply, float64(time.Since(t0).Nanoseconds())/1e6)
	}
	c1, h1 := cpu()
	r.ctrlCPU = (c1 - c0) * 1e3 / float64(applies+1)
	r.hostCPU = (h1 - h0) * 1e3 / float64(applies+1)
	r.apply = r.apply[1:] // the first apply warms up
	return r, nil
}

// processMeter returns a function that reports the CPU seconds each of
// the processes has used since processMeter was called.
func processMeter(pids ...int) func() []float64 {
	start := make([]float64, len(pids))
	for i, pid := range pids {
		start[i] = cpuSeconds(pid)
	}
	return func() []float64 {
		used := make([]float64, len(pids))
		for i, pid := range pids {
			used[i] = cpuSeconds(pid) - start[i]
		}
		return used
	}
}

// cpuMeter meters the cluster's controller, the engine ipRTT uses, and
// this process (the client).
func (c *cluster) cpuMeter(cl *client.Client) func() []float64 {
	ctrl, eng := 0, 0
	if st, err := profile.ReadState(filepath.Join(c.dir, "bench", "cluster.json")); err == nil {
		ctrl = st.ControllerPID
	}
	if es, err := cl.Engines(context.Background()); err == nil {
		for _, e := range es {
			if e.ID == cl.IDs()[0] {
				eng = e.PID
			}
		}
	}
	return processMeter(ctrl, eng, os.Getpid())
}

// cpuPerOp collects CPU microseconds per operation of several processes,
// over runs.
type cpuPerOp struct{ perProc [][]float64 }

func (c *cpuPerOp) add(meter func() []float64, ops int) {
	used := meter()
	if c.perProc == nil {
		c.perProc = make([][]float64, len(used))
	}
	for i, u := range used {
		c.perProc[i] = append(c.perProc[i], u*1e6/float64(ops))
	}
}

// String names each process's median, in order.
func (c *cpuPerOp) String(names ...string) string {
	parts := make([]string, len(c.perProc))
	for i, samples := range c.perProc {
		parts[i] = fmt.Sprintf("%s %.0f µs", names[i], median(samples))
	}
	return strings.Join(parts, ", ") + " (median; the clock ticks every 10 ms, so short runs are coarse)"
}

// cpuSeconds is the CPU time process pid has used.
func cpuSeconds(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var u, k float64
	fmt.Sscan(fields[11], &u)
	fmt.Sscan(fields[12], &k)
	return (u + k) / 100 // clock ticks
}

// runEnginesHost is the engines-host role: n engines in one process,
// sharing one ZeroMQ context, until interrupted.
func runEnginesHost(n int) {
	ctx, cancel := signalContext()
	defer cancel()
	if prefix := os.Getenv("IPCLUSTER_CPUPROFILE"); prefix != "" {
		f, err := os.Create(fmt.Sprintf("%s.engines-host.%d.prof", prefix, os.Getpid()))
		must(err)
		pprof.StartCPUProfile(f)
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
			if f, err := os.Create(fmt.Sprintf("%s.engines-host.%d.allocs", prefix, os.Getpid())); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	net, err := zmqNetwork()
	must(err)
	done := make(chan error, n)
	for range n {
		e, err := engine.New(engine.Options{Network: net, Timeout: time.Minute})
		must(err)
		go func() { done <- e.Run(ctx) }()
	}
	for range n {
		<-done
	}
	net.Close()
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// steerIdle times engine.Steer with nothing pending, on an engine of a
// running cluster (registered, its I/O goroutines beating): nanoseconds
// per steering point, over n of them.
func (b *bench) steerIdle(n int) (float64, error) {
	c, err := b.startCluster(1)
	if err != nil {
		return 0, err
	}
	defer c.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := engine.Start(ctx, engine.Options{ConnectionFile: filepath.Join(c.dir, "bench", "security", "engine.json")})
	if err != nil {
		return 0, err
	}
	defer e.Close()
	var x float64
	if err := e.Expose("x", &x); err != nil {
		return 0, err
	}
	select {
	case <-e.Registered():
	case <-ctx.Done():
		return 0, fmt.Errorf("the steered engine did not register")
	}
	t0 := time.Now()
	for i := range n {
		x += 1
		e.Steer(i)
	}
	return float64(time.Since(t0).Nanoseconds()) / float64(n), nil
}

// tunnelClients connects two more clients to c, through a fresh sshd on
// loopback: one with the system ssh, one with the built-in ssh. close
// ends them and the sshd.
func (c *cluster) tunnelClients(ctx context.Context) (system, builtin *client.Client, close func(), err error) {
	dir, err := os.MkdirTemp("", "ipbench-sshd-")
	if err != nil {
		return nil, nil, nil, err
	}
	s, stopSSHD, err := testenv.StartSSHD(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, fmt.Errorf("%w (the ssh rows need OpenSSH's server: apt-get install openssh-server)", err)
	}
	var clients []*client.Client
	close = func() {
		for _, cl := range clients {
			cl.Close()
		}
		stopSSHD()
		os.RemoveAll(dir)
	}
	for _, builtin := range []bool{false, true} {
		cl, err := client.Connect(ctx, client.Options{ConnectionFile: filepath.Join(c.dir, "bench", "security", "client.json"),
			SSHServer: s.Server, SSH: client.SSHOptions{Builtin: builtin, IdentityFile: s.IdentityFile,
				KnownHosts: []string{s.KnownHosts}, Args: []string{"-F", "/dev/null", "-o", "BatchMode=yes"}}})
		if err != nil {
			close()
			return nil, nil, nil, err
		}
		clients = append(clients, cl)
	}
	return clients[0], clients[1], close, nil
}

// linkDelay is the one-way latency of the emulated wide-area link that
// the far client's ssh connection crosses.
const linkDelay = 5 * time.Millisecond

// farClient connects a client through ssh over a link with linkDelay of
// one-way latency, as a laptop far from its cluster: the built-in ssh, to
// sshd behind delayLink.
func (c *cluster) farClient(ctx context.Context) (*client.Client, func(), error) {
	dir, err := os.MkdirTemp("", "ipbench-sshd-far-")
	if err != nil {
		return nil, nil, err
	}
	s, stopSSHD, err := testenv.StartSSHD(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	link, stopLink, err := delayLink(s.Addr, linkDelay)
	if err != nil {
		stopSSHD()
		os.RemoveAll(dir)
		return nil, nil, err
	}
	closeAll := func() { stopLink(); stopSSHD(); os.RemoveAll(dir) }
	_, port, _ := net.SplitHostPort(link)
	known := filepath.Join(dir, "known_hosts_link")
	if err := os.WriteFile(known, []byte("[127.0.0.1]:"+port+" "+string(ssh.MarshalAuthorizedKey(s.HostKey))), 0o600); err != nil {
		closeAll()
		return nil, nil, err
	}
	user := s.Server[:strings.LastIndexByte(s.Server, '@')]
	cl, err := client.Connect(ctx, client.Options{ConnectionFile: filepath.Join(c.dir, "bench", "security", "client.json"),
		SSHServer: user + "@" + link, SSH: client.SSHOptions{Builtin: true, IdentityFile: s.IdentityFile, KnownHosts: []string{known}}})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return cl, func() { cl.Close(); closeAll() }, nil
}

// delayLink forwards each TCP connection made to the returned local
// address on to addr, holding every chunk of bytes for delay in each
// direction, as a network with that one-way latency (and no bandwidth
// limit) would. stop closes it and its connections.
func delayLink(addr string, delay time.Duration) (local string, stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", addr)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			wg.Go(func() { delayCopy(out, in, delay) })
			wg.Go(func() { delayCopy(in, out, delay) })
		}
	})
	return l.Addr().String(), func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}, nil
}

// delayCopy copies from src to dst, each chunk delay after it was read;
// chunks in flight do not wait for each other.
func delayCopy(dst, src net.Conn, delay time.Duration) {
	type chunk struct {
		due  time.Time
		data []byte
	}
	queue := make(chan chunk, 4096)
	go func() {
		defer close(queue)
		for {
			buf := make([]byte, 64<<10)
			n, err := src.Read(buf)
			if n > 0 {
				queue <- chunk{time.Now().Add(delay), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range queue {
		time.Sleep(time.Until(c.due)) // the link's latency, not synchronisation
		if _, err := dst.Write(c.data); err != nil {
			break
		}
	}
	dst.Close()
	for range queue { // let the reader end
	}
}
