package main

// The transport limits ipcluster is measured against: a bare
// pebbe/zmq4 relay (client -> ROUTER|ROUTER broker -> worker and back) and
// one ZeroMQ hop for bulk data, each with and without CURVE. The broker,
// workers and sink run as separate processes, as ipcluster's do.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// curveKeys are fixed per run: server and peer key pairs, Z85.
type curveKeys struct{ serverPub, serverSec, peerPub, peerSec string }

func newCurveKeys() curveKeys {
	sp, ss, _ := zmq.NewCurveKeypair()
	pp, ps, _ := zmq.NewCurveKeypair()
	return curveKeys{sp, ss, pp, ps}
}

func (k curveKeys) env() []string {
	return []string{"BENCH_CURVE=" + strings.Join([]string{k.serverPub, k.serverSec, k.peerPub, k.peerSec}, " ")}
}

// useCurve, if curve, makes fresh keys and returns the environment that
// gives them to helper processes; this process's sockets use them too
// until done is called.
func useCurve(curve bool) (env []string, done func()) {
	if !curve {
		return nil, func() {}
	}
	env = newCurveKeys().env()
	os.Setenv("BENCH_CURVE", strings.TrimPrefix(env[0], "BENCH_CURVE="))
	return env, func() { os.Unsetenv("BENCH_CURVE") }
}

func keysFromEnv() (curveKeys, bool) {
	f := strings.Fields(os.Getenv("BENCH_CURVE"))
	if len(f) != 4 {
		return curveKeys{}, false
	}
	return curveKeys{f[0], f[1], f[2], f[3]}, true
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func newSocket(t zmq.Type) *zmq.Socket {
	s, err := zmq.NewSocket(t)
	must(err)
	must(s.SetLinger(0))
	must(s.SetSndhwm(0))
	must(s.SetRcvhwm(0))
	return s
}

func serve(s *zmq.Socket) {
	if k, ok := keysFromEnv(); ok {
		must(s.SetCurveServer(1))
		must(s.SetCurveSecretkey(k.serverSec))
	}
}

func dial(s *zmq.Socket) {
	if k, ok := keysFromEnv(); ok {
		must(s.SetCurveServerkey(k.serverPub))
		must(s.SetCurvePublickey(k.peerPub))
		must(s.SetCurveSecretkey(k.peerSec))
	}
}

// runBroker is the relay's broker process: it prints its two endpoints and
// relays until killed.
func runBroker() {
	front, back := newSocket(zmq.ROUTER), newSocket(zmq.ROUTER)
	serve(front)
	serve(back)
	must(front.Bind("tcp://127.0.0.1:*"))
	must(back.Bind("tcp://127.0.0.1:*"))
	fe, _ := front.GetLastEndpoint()
	be, _ := back.GetLastEndpoint()
	fmt.Println(fe, be)
	var workers [][]byte
	var waiting [][][]byte // client messages that came before any worker
	next := 0
	poller := zmq.NewPoller()
	poller.Add(front, zmq.POLLIN)
	poller.Add(back, zmq.POLLIN)
	for {
		polled, err := poller.Poll(-1)
		must(err)
		for _, p := range polled {
			for {
				msg, err := p.Socket.RecvMessageBytes(zmq.DONTWAIT)
				if err != nil {
					break
				}
				if p.Socket == back {
					if len(msg) == 2 { // [worker, "ready"]
						workers = append(workers, msg[0])
						for _, m := range waiting {
							back.SendMessage(msg[0], m)
						}
						waiting = nil
						continue
					}
					front.SendMessage(msg[1:]) // [client, payload...]
				} else {
					switch string(msg[1]) {
					case "count": // [client, "count"]: how many workers are ready
						front.SendMessage(msg[0], fmt.Sprint(len(workers)))
						continue
					case "all": // [client, "all", payload...]: to every worker
						for _, w := range workers {
							back.SendMessage(w, msg[0], msg[2:])
						}
						continue
					}
					if len(workers) == 0 {
						waiting = append(waiting, msg)
						continue
					}
					w := workers[next%len(workers)]
					next++
					back.SendMessage(w, msg) // [worker, client, payload...]
				}
			}
		}
	}
}

// runWorker echoes what the broker sends it.
func runWorker(endpoint string) {
	s := newSocket(zmq.DEALER)
	dial(s)
	must(s.Connect(endpoint))
	s.SendMessage("ready")
	for {
		msg, err := s.RecvMessageBytes(0)
		must(err)
		s.SendMessage(msg)
	}
}

// runWorkers echoes on n sockets at once, from one goroutine that polls
// them all, as a host of many lightweight workers would.
func runWorkers(n int, endpoint string) {
	poller := zmq.NewPoller()
	for range n {
		s := newSocket(zmq.DEALER)
		dial(s)
		must(s.Connect(endpoint))
		s.SendMessage("ready")
		poller.Add(s, zmq.POLLIN)
	}
	for {
		polled, err := poller.Poll(-1)
		must(err)
		for _, p := range polled {
			for {
				msg, err := p.Socket.RecvMessageBytes(zmq.DONTWAIT)
				if err != nil {
					break
				}
				p.Socket.SendMessage(msg)
			}
		}
	}
}

// startFanout starts a relay whose workers live procs to a process,
// perProc each, and waits until the broker knows them all.
func startFanout(procs, perProc int) *relay {
	env, done := useCurve(true)
	defer done()
	broker, eps := helper(env, "relay-broker")
	f := strings.Fields(eps)
	r := &relay{cmds: []*exec.Cmd{broker}}
	for range procs {
		w, _ := helperNoLine(env, "relay-workers", fmt.Sprint(perProc), f[1])
		r.cmds = append(r.cmds, w)
	}
	r.client = newSocket(zmq.DEALER)
	dial(r.client)
	must(r.client.Connect(f[0]))
	for want := fmt.Sprint(procs * perProc); ; time.Sleep(10 * time.Millisecond) { // polling a condition
		r.client.SendMessage("count")
		msg, err := r.client.RecvMessageBytes(0)
		must(err)
		if string(msg[0]) == want {
			return r
		}
	}
}

// fanout sends a 1 KB message to every worker at once, n times. It
// returns the milliseconds until each time's last echo is in, and the CPU
// milliseconds per time of the broker and of the worker processes.
func (r *relay) fanout(workers, n int) (ms []float64, brokerCPU, workersCPU float64) {
	payload := make([]byte, 1024)
	cpu := func() (b, w float64) {
		b = cpuSeconds(r.cmds[0].Process.Pid)
		for _, c := range r.cmds[1:] {
			w += cpuSeconds(c.Process.Pid)
		}
		return
	}
	b0, w0 := cpu()
	for i := range n + 1 {
		t0 := time.Now()
		r.client.SendMessage("all", payload)
		for range workers {
			_, err := r.client.RecvMessageBytes(0)
			must(err)
		}
		if i > 0 { // the first warms up
			ms = append(ms, float64(time.Since(t0).Nanoseconds())/1e6)
		}
	}
	b1, w1 := cpu()
	return ms, (b1 - b0) * 1e3 / float64(n+1), (w1 - w0) * 1e3 / float64(n+1)
}

// runSink receives bulk frames and acknowledges each; it prints its endpoint.
func runSink() {
	s := newSocket(zmq.ROUTER)
	serve(s)
	must(s.Bind("tcp://127.0.0.1:*"))
	ep, _ := s.GetLastEndpoint()
	fmt.Println(ep)
	for {
		msg, err := s.RecvMessageBytes(0)
		must(err)
		s.SendMessage(msg[0], "ok")
	}
}

// helper starts this program in a role and returns the line it prints.
func helper(env []string, args ...string) (*exec.Cmd, string) {
	self, err := os.Executable()
	must(err)
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	must(err)
	must(cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	must(err)
	return cmd, strings.TrimSpace(line)
}

func stopAll(cmds ...*exec.Cmd) {
	for _, c := range cmds {
		c.Process.Kill()
		c.Wait()
	}
}

// relay is a running relay: broker and workers.
type relay struct {
	cmds   []*exec.Cmd
	client *zmq.Socket
}

func startRelay(curve bool, workers int) *relay {
	env, done := useCurve(curve)
	defer done()
	broker, eps := helper(env, "relay-broker")
	f := strings.Fields(eps)
	r := &relay{cmds: []*exec.Cmd{broker}}
	for range workers {
		w, _ := helperNoLine(env, "relay-worker", f[1])
		r.cmds = append(r.cmds, w)
	}
	r.client = newSocket(zmq.DEALER)
	dial(r.client)
	must(r.client.Connect(f[0]))
	// One echo through the relay: the broker and a worker are up.
	r.client.SendMessage("hello")
	_, err := r.client.RecvMessageBytes(0)
	must(err)
	return r
}

func helperNoLine(env []string, args ...string) (*exec.Cmd, error) {
	self, _ := os.Executable()
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	return cmd, cmd.Start()
}

func (r *relay) close() {
	r.client.Close()
	stopAll(r.cmds...)
}

// rtt measures n sequential round trips of a 64-byte message, in microseconds.
func (r *relay) rtt(n int) []float64 {
	payload := make([]byte, 64)
	out := make([]float64, 0, n)
	for range n {
		t0 := time.Now()
		r.client.SendBytes(payload, 0)
		_, err := r.client.RecvMessageBytes(0)
		must(err)
		out = append(out, float64(time.Since(t0).Nanoseconds())/1e3)
	}
	return out
}

// pipelined measures round trips per second with up to window outstanding.
func (r *relay) pipelined(n, window int) float64 {
	payload := make([]byte, 64)
	sent, got := 0, 0
	t0 := time.Now()
	for got < n {
		for sent < n && sent-got < window {
			r.client.SendBytes(payload, zmq.DONTWAIT)
			sent++
		}
		_, err := r.client.RecvMessageBytes(0)
		must(err)
		got++
		for {
			if _, err := r.client.RecvMessageBytes(zmq.DONTWAIT); err != nil {
				break
			}
			got++
		}
	}
	return float64(n) / time.Since(t0).Seconds()
}

// hop measures sending size bytes in one frame to another process and
// getting its acknowledgement, in GB/s, runs times.
func hop(curve bool, size, runs int) []float64 {
	env, done := useCurve(curve)
	defer done()
	sink, ep := helper(env, "hop-sink")
	defer stopAll(sink)
	s := newSocket(zmq.DEALER)
	defer s.Close()
	dial(s)
	must(s.Connect(ep))
	buf := make([]byte, size)
	for range 3 { // warm, as workload 4 is
		s.SendBytes(buf, 0)
		s.RecvMessageBytes(0)
	}
	var out []float64
	for range runs {
		t0 := time.Now()
		_, err := s.SendBytes(buf, 0)
		must(err)
		_, err = s.RecvMessageBytes(0)
		must(err)
		out = append(out, float64(size)/time.Since(t0).Seconds()/1e9)
	}
	return out
}

// memcpy measures copying size bytes in this process, in GB/s.
func memcpy(size, runs int) []float64 {
	src, dst := make([]byte, size), make([]byte, size)
	for i := range src {
		src[i] = byte(i)
	}
	copy(dst, src)
	var out []float64
	for range runs {
		t0 := time.Now()
		copy(dst, src)
		out = append(out, float64(size)/time.Since(t0).Seconds()/1e9)
	}
	return out
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func percentile(xs []float64, p float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	i := int(p / 100 * float64(len(s)-1))
	return s[i]
}
