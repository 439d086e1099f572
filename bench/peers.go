package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// python is the interpreter of Debian's python3-* packages.
const python = "/usr/bin/python3"

// peer is a tool users would pick instead, measured by a script in
// bench/peers that prints one JSON line per measurement.
type peer struct {
	name    string   // column name
	module  string   // Python module to import, or "" for a command
	command string   // a command on PATH, for non-Python peers
	pkg     string   // Debian package
	argv    []string // how to run its script, before the common flags
	covers  []string // the rows it is measured in
}

var peers = []peer{
	{name: "ipyparallel", module: "ipyparallel", pkg: "python3-ipyparallel",
		argv:   []string{python, "bench/peers/ipyparallel_bench.py"},
		covers: []string{"rtt50", "rtt99", "lb", "map", "push", "pull", "startup"}},
	{name: "dask", module: "distributed", pkg: "python3-distributed",
		argv:   []string{python, "bench/peers/dask_bench.py"},
		covers: []string{"rtt50", "rtt99", "lb", "map", "push", "pull"}},
	{name: "mpi4py.futures", module: "mpi4py.futures", pkg: "python3-mpi4py",
		argv: []string{"mpiexec", "--allow-run-as-root", "--oversubscribe", "-n", "3", python, "-m", "mpi4py.futures",
			"bench/peers/mpi4py_bench.py"},
		covers: []string{"rtt50", "rtt99", "lb", "map"}},
	{name: "GNU parallel", command: "parallel", pkg: "parallel", covers: []string{"shell"}},
}

// available reports whether a peer can run, and its version or why not.
func (p peer) available() (bool, string) {
	if p.command != "" {
		out, err := exec.Command(p.command, "--version").Output()
		if err != nil {
			return false, "missing: " + p.command + " not found"
		}
		line, _, _ := strings.Cut(string(out), "\n")
		return true, strings.TrimSpace(strings.TrimPrefix(line, "GNU parallel"))
	}
	out, err := exec.Command(python, "-c", fmt.Sprintf("import %s as m, importlib.metadata as md; print(md.version(%q))",
		p.module, map[string]string{"ipyparallel": "ipyparallel", "distributed": "distributed", "mpi4py.futures": "mpi4py"}[p.module])).Output()
	if err != nil {
		return false, "missing: python3 cannot import " + p.module
	}
	return true, strings.TrimSpace(string(out))
}

// install installs the Debian packages of missing peers, as root.
func installPeers(missing []peer) {
	if len(missing) == 0 {
		return
	}
	var pkgs []string
	for _, p := range missing {
		pkgs = append(pkgs, p.pkg)
	}
	if os.Geteuid() != 0 {
		progress("peers missing; to measure them run: sudo apt-get install %s", strings.Join(pkgs, " "))
		return
	}
	progress("installing peers: apt-get install %s", strings.Join(pkgs, " "))
	cmd := exec.Command("apt-get", append([]string{"install", "-y", "-qq"}, pkgs...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		exec.Command("apt-get", "update", "-qq").Run()
		if out2, err := exec.Command("apt-get", append([]string{"install", "-y", "-qq"}, pkgs...)...).CombinedOutput(); err != nil {
			progress("could not install peers: %v\n%s%s", err, out, out2)
		}
	}
}

// peerRows maps a script's (workload, metric) to a row.
var peerRows = map[[2]string]string{
	{"rtt", "p50_us"}:        "rtt50",
	{"rtt", "p99_us"}:        "rtt99",
	{"lb", "tasks_per_s"}:    "lb",
	{"map", "items_per_s"}:   "map",
	{"push", "push_gbps"}:    "push",
	{"pull", "pull_gbps"}:    "pull",
	{"startup", "seconds"}:   "startup",
	{"startup", "startup_s"}: "startup",
}

// runPeers measures every peer it can and returns their versions.
func (b *bench) runPeers(rows *rowSet) map[string]string {
	versions := map[string]string{}
	var missing []peer
	for _, p := range peers {
		if ok, _ := p.available(); !ok {
			missing = append(missing, p)
		}
	}
	installPeers(missing)
	for _, p := range peers {
		ok, v := p.available()
		versions[p.name] = v
		if !ok {
			for _, key := range p.covers {
				rows.get(key).Peers[p.name] = &Series{Error: v}
			}
			continue
		}
		if p.command == "parallel" {
			if b.wants("6") {
				progress("GNU parallel: shell farm")
				n := b.size(1000, 20)
				s := &Series{}
				for range b.runs {
					d, err := shellLimit(n, "parallel -j2 sh -c true")
					s.add(d, n, err)
				}
				rows.get("shell").Peers[p.name] = s
			}
			continue
		}
		progress("%s", p.name)
		b.runPeerScript(p, rows)
	}
	return versions
}

func (b *bench) runPeerScript(p peer, rows *rowSet) {
	size := "full"
	timeout := 15 * time.Minute
	if b.smoke {
		size, timeout = "smoke", 3*time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := append(append([]string{}, p.argv[1:]...), "--size", size, "--runs", fmt.Sprint(b.runs))
	cmd := exec.CommandContext(ctx, p.argv[0], args...)
	cmd.Env = append(os.Environ(), "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1", "PYTHONWARNINGS=ignore")
	logPath := filepath.Join(b.out, fmt.Sprintf("%s-%s.log", b.date, strings.ReplaceAll(p.name, " ", "-")))
	logf, err := os.Create(logPath)
	if err == nil {
		defer logf.Close()
		cmd.Stderr = logf
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	runErr := cmd.Run()
	sc := bufio.NewScanner(&stdout)
	got := 0
	for sc.Scan() {
		var line struct {
			Workload string   `json:"workload"`
			Metric   string   `json:"metric"`
			Value    *float64 `json:"value"`
			N        int      `json:"n"`
			Error    string   `json:"error"`
			Note     string   `json:"note"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		if line.Error != "" {
			for k, key := range peerRows {
				if k[0] == line.Workload {
					s := seriesOf(rows.get(key), p.name)
					s.Error = line.Error
				}
			}
			continue
		}
		key, ok := peerRows[[2]string{line.Workload, line.Metric}]
		if !ok || line.Value == nil {
			continue
		}
		s := seriesOf(rows.get(key), p.name)
		s.Samples = append(s.Samples, *line.Value)
		s.N = line.N
		if line.Note != "" {
			s.Note = line.Note
		}
		got++
	}
	if runErr != nil || got == 0 {
		msg := fmt.Sprintf("%s failed (%v); see %s", p.name, runErr, logPath)
		progress("%s", msg)
		for _, key := range p.covers {
			if s := seriesOf(rows.get(key), p.name); !s.ok() && s.Error == "" {
				s.Error = msg
			}
		}
	}
}

func seriesOf(r *Row, name string) *Series {
	s := r.Peers[name]
	if s == nil {
		s = &Series{}
		r.Peers[name] = s
	}
	return s
}
