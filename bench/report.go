package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// Series is one measured quantity: a sample per run.
type Series struct {
	Samples []float64 `json:"samples"`
	N       int       `json:"n,omitempty"`     // calls, tasks, items or bytes per run
	Note    string    `json:"note,omitempty"`  // how it was measured, where it differs
	Error   string    `json:"error,omitempty"` // why there are no samples
}

// Median returns the median sample.
func (s *Series) Median() float64 { return median(s.Samples) }

// ok reports whether s has samples.
func (s *Series) ok() bool { return s != nil && len(s.Samples) > 0 }

// Row is one workload metric with every contender's series.
type Row struct {
	Workload string             `json:"workload"`
	Metric   string             `json:"metric"` // e.g. "p50 µs", "tasks/s"
	Higher   bool               `json:"higher_is_better"`
	Ours     *Series            `json:"ipcluster"`
	Peers    map[string]*Series `json:"peers,omitempty"`
	Limit    *Series            `json:"limit,omitempty"`
	LimitOf  string             `json:"limit_name,omitempty"`
	// Target, if set, is the goal: Ours against the limit (ratio ≤ or ≥
	// Bound) or against a peer (speedup ≥ Bound), or an absolute value.
	Targets []Target `json:"targets,omitempty"`
}

// Target is one goal of a row.
type Target struct {
	Against string  `json:"against"` // "limit", a peer's name, or "" for an absolute bound
	Bound   float64 `json:"bound"`
	Text    string  `json:"text"`
	Met     *bool   `json:"met,omitempty"` // nil if it could not be judged
}

// ratio is our median divided by another's.
func (r *Row) ratio(other *Series) (float64, bool) {
	if !r.Ours.ok() || !other.ok() || other.Median() == 0 {
		return 0, false
	}
	return r.Ours.Median() / other.Median(), true
}

// speedup is how many times better ours is than other (>1: ours is better).
func (r *Row) speedup(other *Series) (float64, bool) {
	q, ok := r.ratio(other)
	if !ok || q == 0 {
		return 0, false
	}
	if r.Higher {
		return q, true
	}
	return 1 / q, true
}

// judge evaluates the row's targets.
func (r *Row) judge() {
	for i := range r.Targets {
		t := &r.Targets[i]
		var met, known bool
		switch t.Against {
		case "":
			if r.Ours.ok() {
				v := r.Ours.Median()
				met, known = (r.Higher && v >= t.Bound) || (!r.Higher && v <= t.Bound), true
			}
		case "limit":
			if q, ok := r.ratio(r.Limit); ok {
				met, known = (r.Higher && q >= t.Bound) || (!r.Higher && q <= t.Bound), true
			}
		default:
			if s, ok := r.speedup(r.Peers[t.Against]); ok {
				met, known = s >= t.Bound, true
			}
		}
		if known {
			t.Met = &met
		}
	}
}

// Report is a whole run.
type Report struct {
	Date    string            `json:"date"`
	Mode    string            `json:"mode"` // "full" or "smoke"
	Runs    int               `json:"runs"`
	Machine map[string]string `json:"machine"`
	Peers   map[string]string `json:"peers"` // name -> version, or "missing: why"
	Rows    []*Row            `json:"rows"`
}

func (rep *Report) writeJSON(path string) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// peerOrder is the column order of peers in the table.
var peerOrder = []string{"ipyparallel", "dask", "mpi4py.futures", "GNU parallel"}

// fmtValue prints a number with sensible precision.
func fmtValue(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case a >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// cell prints a series as "median (min–max)", or why it is missing.
func cell(s *Series) string {
	switch {
	case s == nil:
		return "–"
	case s.Error != "":
		return "error"
	case len(s.Samples) == 0:
		return "–"
	case len(s.Samples) == 1:
		return fmtValue(s.Samples[0])
	}
	return fmt.Sprintf("%s (%s–%s)", fmtValue(s.Median()), fmtValue(slices.Min(s.Samples)), fmtValue(slices.Max(s.Samples)))
}

// writeMarkdown writes the report as a markdown page.
func (rep *Report) writeMarkdown(w io.Writer) {
	fmt.Fprintf(w, "# ipcluster benchmarks, %s (%s run, %d runs per workload)\n\n", rep.Date, rep.Mode, rep.Runs)
	fmt.Fprintf(w, "Machine: %s\n\n", machineLine(rep.Machine))
	var peers []string
	for _, p := range peerOrder {
		peers = append(peers, fmt.Sprintf("%s %s", p, rep.Peers[p]))
	}
	fmt.Fprintf(w, "Peers: %s.\n\n", strings.Join(peers, "; "))
	if rep.Mode == "smoke" {
		fmt.Fprintln(w, "A smoke run: every workload once, at tiny size, to keep the harness working. Its numbers say")
		fmt.Fprintln(w, "nothing about speed, and its targets are not judged (\"?\"); see `make bench` for a full run.")
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "Each cell is the median of the runs, with the lowest and highest in parentheses.")
	fmt.Fprintln(w, "\"× limit\" is ipcluster's median divided by the limit's; \"vs peer\" is how many times better ipcluster is.")
	fmt.Fprintln(w)
	fmt.Fprint(w, "| workload | metric | ipcluster |")
	for _, p := range peerOrder {
		fmt.Fprintf(w, " %s |", p)
	}
	fmt.Fprintln(w, " limit | × limit | vs peers | target |")
	fmt.Fprint(w, "|---|---|---|")
	for range peerOrder {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w, "---|---|---|---|")
	for _, r := range rep.Rows {
		fmt.Fprintf(w, "| %s | %s | %s |", r.Workload, r.Metric, cell(r.Ours))
		var vs []string
		for _, p := range peerOrder {
			s := r.Peers[p]
			fmt.Fprintf(w, " %s |", cell(s))
			if x, ok := r.speedup(s); ok {
				vs = append(vs, fmt.Sprintf("%s× %s", fmtValue(x), short(p)))
			}
		}
		limit, ratio := "–", "–"
		if r.Limit.ok() {
			limit = cell(r.Limit) + " " + r.LimitOf
			if q, ok := r.ratio(r.Limit); ok {
				ratio = fmt.Sprintf("%.2f", q)
			}
		}
		var targets []string
		for _, t := range r.Targets {
			mark := "?"
			if t.Met != nil {
				mark = map[bool]string{true: "met", false: "**missed**"}[*t.Met]
			}
			targets = append(targets, t.Text+": "+mark)
		}
		fmt.Fprintf(w, " %s | %s | %s | %s |\n", limit, ratio, strings.Join(vs, ", "), strings.Join(targets, "; "))
	}
	var notes []string
	for _, r := range rep.Rows {
		for name, s := range r.allSeries() {
			if s.Note != "" {
				notes = append(notes, fmt.Sprintf("- %s, %s: %s", r.Workload, name, s.Note))
			}
			if s.Error != "" {
				notes = append(notes, fmt.Sprintf("- %s, %s: error: %s", r.Workload, name, s.Error))
			}
		}
	}
	slices.Sort(notes)
	notes = slices.Compact(notes)
	if len(notes) > 0 {
		fmt.Fprintln(w, "\nNotes:")
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
}

func (r *Row) allSeries() map[string]*Series {
	out := map[string]*Series{}
	if r.Ours != nil {
		out["ipcluster"] = r.Ours
	}
	if r.Limit != nil {
		out["limit ("+r.LimitOf+")"] = r.Limit
	}
	for p, s := range r.Peers {
		if s != nil {
			out[p] = s
		}
	}
	return out
}

// failures lists the series that failed for a reason other than a peer
// being missing: a broken harness or peer script, which a smoke run must
// not pass over.
func (rep *Report) failures() []string {
	var out []string
	for _, r := range rep.Rows {
		for name, s := range r.allSeries() {
			if s.Error != "" && !strings.HasPrefix(rep.Peers[name], "missing") {
				out = append(out, fmt.Sprintf("%s, %s: %s", r.Workload, name, s.Error))
			}
		}
	}
	slices.Sort(out)
	return out
}

func short(peer string) string {
	switch peer {
	case "ipyparallel":
		return "ipp"
	case "mpi4py.futures":
		return "mpi4py"
	case "GNU parallel":
		return "parallel"
	}
	return peer
}

func machineLine(m map[string]string) string {
	return fmt.Sprintf("%s, %s cores, %s RAM, %s, %s, libzmq %s", m["cpu"], m["cores"], m["memory"], m["os"], m["go"], m["libzmq"])
}
