package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/ipcluster/ipcluster/client"
)

// run measures everything and returns the report.
func (b *bench) run() (*Report, error) {
	mode := "full"
	if b.smoke {
		mode = "smoke"
	}
	rep := &Report{Date: b.date, Mode: mode, Runs: b.runs, Machine: machine()}
	rows := newRows()
	rep.Rows = rows.list

	if b.wants("limits") || b.only == nil {
		b.limits(rows)
	}
	if err := b.ours(rows); err != nil {
		return nil, err
	}
	if b.peers {
		rep.Peers = b.runPeers(rows)
	} else {
		rep.Peers = map[string]string{}
		for _, p := range peerOrder {
			rep.Peers[p] = "not run (-peers=false)"
		}
	}
	if !b.smoke { // tiny sizes say nothing about the targets
		for _, r := range rep.Rows {
			r.judge()
		}
	}
	return rep, nil
}

// rowSet holds the rows by key, in table order.
type rowSet struct {
	list  []*Row
	byKey map[string]*Row
}

func (s *rowSet) get(key string) *Row { return s.byKey[key] }

func newRows() *rowSet {
	s := &rowSet{byKey: map[string]*Row{}}
	add := func(key string, r *Row) {
		r.Ours, r.Peers = &Series{}, map[string]*Series{}
		s.list = append(s.list, r)
		s.byKey[key] = r
	}
	yes := func(t string, against string, bound float64) Target {
		return Target{Against: against, Bound: bound, Text: t}
	}
	add("rtt50", &Row{Workload: "1 direct apply round trip", Metric: "p50 µs", LimitOf: "relay (CURVE)",
		Targets: []Target{yes("≤ 1.2× limit", "limit", 1.2), yes("≥ 8× ipyparallel", "ipyparallel", 8)}})
	add("rtt99", &Row{Workload: "1 direct apply round trip", Metric: "p99 µs", LimitOf: "relay (CURVE)"})
	add("lb", &Row{Workload: "2 load-balanced no-op tasks", Metric: "tasks/s", Higher: true, LimitOf: "pipelined relay (CURVE)",
		Targets: []Target{yes("≥ 0.5× limit", "limit", 0.5), yes("≥ 100× ipyparallel", "ipyparallel", 100),
			yes("≥ 10× mpi4py.futures", "mpi4py.futures", 10)}})
	add("map", &Row{Workload: "3 chunked map, small items", Metric: "items/s", Higher: true,
		Targets: []Target{yes("≥ 2,000,000 items/s", "", 2e6)}})
	add("push", &Row{Workload: "4 push 100 MB float64", Metric: "GB/s", Higher: true, LimitOf: "one hop (CURVE)",
		Targets: []Target{yes("≥ 0.8× limit", "limit", 0.8)}})
	add("pull", &Row{Workload: "4 pull 100 MB float64", Metric: "GB/s", Higher: true, LimitOf: "one hop (CURVE)",
		Targets: []Target{yes("≥ 0.8× limit", "limit", 0.8)}})
	add("startup", &Row{Workload: "5 start 4 engines", Metric: "s",
		Targets: []Target{yes("≤ 0.5 s", "", 0.5)}})
	add("startup_mpi", &Row{Workload: "5 mpiexec -n 4 engines", Metric: "s", LimitOf: "mpiexec -n 4, MPI_Init only (C)",
		Targets: []Target{yes("≤ 0.5 s", "", 0.5)}})
	add("shell", &Row{Workload: "6 shell farm, 1000 × sh -c true", Metric: "s", LimitOf: "xargs -P2",
		Targets: []Target{yes("≤ 1.3× limit", "limit", 1.3), yes("faster than GNU parallel", "GNU parallel", 1)}})
	add("register", &Row{Workload: "7 register 1000 engines", Metric: "s",
		Targets: []Target{yes("≤ 2 s", "", 2)}})
	add("apply1000", &Row{Workload: "7 1 KB apply to 1000 engines", Metric: "ms", LimitOf: "fan-out relay (CURVE)",
		Targets: []Target{yes("≤ 50 ms", "", 50)}})
	add("steer", &Row{Workload: "8 steering point, nothing pending", Metric: "ns",
		Targets: []Target{yes("< 1 µs", "", 1000)}})
	add("ssh_map", &Row{Workload: "9 chunked map through ssh (system ssh)", Metric: "items/s", Higher: true, LimitOf: "direct"})
	add("ssh_map_builtin", &Row{Workload: "9 chunked map through ssh (built-in ssh)", Metric: "items/s", Higher: true, LimitOf: "direct"})
	add("ssh_rtt", &Row{Workload: "9 direct apply round trip through ssh (system ssh)", Metric: "p50 µs", LimitOf: "direct"})
	add("far_map", &Row{Workload: "9 chunked map through ssh over a 5 ms link", Metric: "items/s", Higher: true, LimitOf: "direct"})
	add("far_rtt", &Row{Workload: "9 direct apply round trip through ssh over a 5 ms link", Metric: "p50 µs", LimitOf: "direct"})
	return s
}

// limits measures the transport limits.
func (b *bench) limits(rows *rowSet) {
	progress("transport limits")
	rttN, pipeN := b.size(3000, 100), b.size(100000, 1000)
	plain50, plainPipe := &Series{}, &Series{}
	var rttLimitCPU string
	for _, curve := range []bool{true, false} {
		var cpu cpuPerOp
		for range b.runs {
			r := startRelay(curve, 1)
			meter := processMeter(r.cmds[0].Process.Pid, r.cmds[1].Process.Pid, os.Getpid())
			lat := r.rtt(rttN)
			cpu.add(meter, rttN)
			r.close()
			r = startRelay(curve, 2)
			tp := r.pipelined(pipeN, 1000)
			r.close()
			if curve {
				rows.get("rtt50").limit(median(lat), rttN)
				rttLimitCPU = cpu.String("broker", "worker", "client")
				rows.get("rtt99").limit(percentile(lat, 99), rttN)
				rows.get("lb").limit(tp, pipeN)
			} else {
				plain50.Samples = append(plain50.Samples, median(lat))
				plainPipe.Samples = append(plainPipe.Samples, tp)
			}
		}
	}
	rows.get("rtt50").Limit.Note = fmt.Sprintf("a relay without CURVE: %s µs; CPU per round trip with CURVE: %s", cell(plain50), rttLimitCPU)
	rows.get("lb").Limit.Note = fmt.Sprintf("a relay without CURVE: %s round trips/s", cell(plainPipe))
	size := b.size(100<<20, 1<<20)
	hopCurve := hop(true, size, b.runs)
	hopPlain := hop(false, size, b.runs)
	mc := memcpy(size, b.runs)
	for _, k := range []string{"push", "pull"} {
		for _, v := range hopCurve {
			rows.get(k).limit(v, size)
		}
		rows.get(k).Limit.Note = fmt.Sprintf("one hop without CURVE: %s GB/s; memcpy: %s GB/s",
			cell(&Series{Samples: hopPlain}), cell(&Series{Samples: mc}))
	}
	procs := b.size(b.scaleProcs, 2)
	workers := b.size(1000, 20)
	var brokerCPU, workersCPU []float64
	for range b.runs {
		r := startFanout(procs, workers/procs)
		ms, bc, wc := r.fanout(workers, b.fanoutRounds())
		for _, v := range ms {
			rows.get("apply1000").limit(v, workers)
		}
		brokerCPU, workersCPU = append(brokerCPU, bc), append(workersCPU, wc)
		r.close()
	}
	rows.get("apply1000").Limit.Note = fmt.Sprintf("bare pebbe/zmq4: a ROUTER broker sends to %d DEALERs in %d processes, "+
		"which echo; %d rounds per start, each a sample; CPU per round: broker %.0f ms, worker processes %.0f ms (median)", workers, procs, b.fanoutRounds(), median(brokerCPU), median(workersCPU))
	n := b.size(1000, 20)
	for range b.runs {
		d, err := shellLimit(n, "xargs -P2 -n1 sh -c true")
		rows.get("shell").limitOrError(d, n, err)
	}
	for range b.runs {
		d, err := mpiexecLimit(4)
		rows.get("startup_mpi").limitOrError(d, 4, err)
	}
}

func (r *Row) limit(v float64, n int) {
	if r.Limit == nil {
		r.Limit = &Series{}
	}
	r.Limit.Samples = append(r.Limit.Samples, v)
	r.Limit.N = n
}

func (r *Row) limitOrError(v float64, n int, err error) {
	if err != nil {
		if r.Limit == nil {
			r.Limit = &Series{}
		}
		r.Limit.Error = err.Error()
		return
	}
	r.limit(v, n)
}

func (s *Series) add(v float64, n int, err error) {
	if err != nil {
		s.Error = err.Error()
		return
	}
	s.Samples = append(s.Samples, v)
	s.N = n
}

// ours measures ipcluster.
func (b *bench) ours(rows *rowSet) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if b.wants("1") || b.wants("2") || b.wants("3") || b.wants("4") || b.wants("6") {
		progress("ipcluster: workloads 1-4 and 6 on a cluster of 2 engines")
		c, err := b.startCluster(2)
		if err != nil {
			return err
		}
		defer c.stop() // on an early return; stopped below otherwise
		cl := c.client
		ipRTT(ctx, cl, 100) // warm up
		ipLB(ctx, cl, 1000)
		// Each workload's runs follow one another, as the peers' do.
		if b.wants("1") {
			var rttCPU cpuPerOp
			for range b.runs {
				n := b.size(2000, 50)
				cpu := c.cpuMeter(cl)
				p50, p99, err := ipRTT(ctx, cl, n)
				rttCPU.add(cpu, n)
				rows.get("rtt50").Ours.add(p50, n, err)
				rows.get("rtt99").Ours.add(p99, n, err)
				rows.get("rtt50").Ours.Note = "CPU per round trip: " + rttCPU.String("controller", "engine", "client")
			}
		}
		if b.wants("2") {
			for range b.runs {
				n := b.size(20000, 200)
				v, err := ipLB(ctx, cl, n)
				rows.get("lb").Ours.add(v, n, err)
			}
		}
		if b.wants("3") {
			for range b.runs {
				n := b.size(1000000, 10000)
				v, err := ipMap(ctx, cl, n)
				rows.get("map").Ours.add(v, n, err)
				rows.get("map").Ours.Note = "echo (returns its argument) over ints, automatic chunking"
			}
		}
		if b.wants("4") {
			size := b.size(100<<20, 1<<20)
			// The first transfers of 100 MB into fresh processes grow
			// their memory (page faults, collections) and run at half the
			// speed of the later ones: measure the steady state, after as
			// many unmeasured transfers as the peers and the limit make.
			for range 3 {
				ipPushPull(ctx, cl, size)
			}
			for range b.runs {
				push, pull, err := ipPushPull(ctx, cl, size)
				rows.get("push").Ours.add(push, size, err)
				rows.get("pull").Ours.add(pull, size, err)
			}
		}
		if b.wants("6") {
			for range b.runs {
				n := b.size(1000, 20)
				v, err := ipShellFarm(ctx, cl, n)
				rows.get("shell").Ours.add(v, n, err)
			}
		}
		c.stop() // the next workloads have the machine to themselves
	}
	if b.wants("5") {
		progress("ipcluster: startup")
		for range b.runs {
			v, err := b.ipStartup("start", 4)
			rows.get("startup").Ours.add(v, 4, err)
		}
		progress("ipcluster: mpiexec startup")
		for range b.runs {
			v, err := b.ipStartup("mpiexec", 4)
			rows.get("startup_mpi").Ours.add(v, 4, err)
		}
	}
	if b.wants("7") {
		hosts := b.size(b.scaleProcs, 2)
		per := b.size(1000, 20) / hosts
		progress("ipcluster: %d engines in %d processes", hosts*per, hosts)
		var ctrlCPU, hostCPU []float64
		for range b.runs {
			r, err := b.ipScale(hosts, per, b.fanoutRounds())
			rows.get("register").Ours.add(r.register, hosts*per, err)
			if err != nil {
				rows.get("apply1000").Ours.Error = err.Error()
				continue
			}
			for _, a := range r.apply {
				rows.get("apply1000").Ours.add(a, hosts*per, nil)
			}
			ctrlCPU, hostCPU = append(ctrlCPU, r.ctrlCPU), append(hostCPU, r.hostCPU)
		}
		rows.get("apply1000").Ours.Note = fmt.Sprintf("%d applies per registration run, each a sample; "+
			"CPU per apply: controller %.0f ms, engine processes %.0f ms (median)", b.fanoutRounds(), median(ctrlCPU), median(hostCPU))
		if b.smoke {
			rows.get("register").Ours.Note = fmt.Sprintf("smoke: %d engines", hosts*per)
		}
	}
	if b.wants("9") {
		progress("ipcluster: through ssh tunnels, against direct")
		if err := b.throughSSH(ctx, rows); err != nil {
			for _, k := range []string{"ssh_map", "ssh_map_builtin", "ssh_rtt", "far_map", "far_rtt"} {
				rows.get(k).Ours.Error = err.Error()
			}
		}
	}
	if b.wants("8") {
		progress("ipcluster: steering points")
		n := b.size(20_000_000, 100_000)
		for range b.runs {
			v, err := b.steerIdle(n)
			rows.get("steer").Ours.add(v, n, err)
		}
		rows.get("steer").Ours.Note = fmt.Sprintf("engine.Steer with nothing pending, %d calls per run, "+
			"on an engine registered with a running controller", n)
	}
	return nil
}

// throughSSH runs workloads 1 and 3 on one cluster through clients that
// reach it directly and through ssh tunnels to a loopback sshd, the
// direct client giving the limit.
func (b *bench) throughSSH(ctx context.Context, rows *rowSet) error {
	c, err := b.startCluster(2)
	if err != nil {
		return err
	}
	defer c.stop()
	system, builtin, closeTunnels, err := c.tunnelClients(ctx)
	if err != nil {
		return err
	}
	defer closeTunnels()
	far, closeFar, err := c.farClient(ctx)
	if err != nil {
		return err
	}
	defer closeFar()
	n, rttN := b.size(1000000, 10000), b.size(2000, 50)
	for _, cl := range []*client.Client{c.client, system, builtin, far} {
		ipRTT(ctx, cl, 20) // warm up
	}
	for range b.runs {
		v, err := ipMap(ctx, c.client, n)
		rows.get("ssh_map").limitOrError(v, n, err)
		rows.get("ssh_map_builtin").limitOrError(v, n, err)
		v, err = ipMap(ctx, system, n)
		rows.get("ssh_map").Ours.add(v, n, err)
		v, err = ipMap(ctx, builtin, n)
		rows.get("ssh_map_builtin").Ours.add(v, n, err)
		p50, _, err := ipRTT(ctx, c.client, rttN)
		rows.get("ssh_rtt").limitOrError(p50, rttN, err)
		p50, _, err = ipRTT(ctx, system, rttN)
		rows.get("ssh_rtt").Ours.add(p50, rttN, err)
		v, err = ipMap(ctx, c.client, n)
		rows.get("far_map").limitOrError(v, n, err)
		v, err = ipMap(ctx, far, n)
		rows.get("far_map").Ours.add(v, n, err)
		farN := max(rttN/20, 20) // each takes 10 ms more
		p50, _, err = ipRTT(ctx, c.client, farN)
		rows.get("far_rtt").limitOrError(p50, farN, err)
		p50, _, err = ipRTT(ctx, far, farN)
		rows.get("far_rtt").Ours.add(p50, farN, err)
	}
	note := "the same cluster (2 engines) through a loopback sshd; the limit is a direct client in the same run"
	for _, k := range []string{"ssh_map", "ssh_map_builtin", "ssh_rtt"} {
		rows.get(k).Ours.Note = note
	}
	farNote := fmt.Sprintf("built-in ssh to a loopback sshd behind a proxy holding every chunk %v each way (a 10 ms round trip); "+
		"a map's chunks travel pipelined, so it pays the latency about once, a lone round trip pays it every time", linkDelay)
	rows.get("far_map").Ours.Note, rows.get("far_rtt").Ours.Note = farNote, farNote
	return nil
}
