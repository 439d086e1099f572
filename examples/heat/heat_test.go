package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/internal/testenv"
	"github.com/ipcluster/ipcluster/mpi"
)

// The tests run in both builds. Without the tag mpi, mpi.World() is the
// stub's one rank (even before mpi.Init), and the one-rank tests compare a
// Sim holding the whole grid with Serial. With the tag mpi,
// TestUnderMPIExec runs this test binary as 3 ranks under mpiexec, where
// TestMain initialises MPI and the TestRank tests compare each rank's
// share of the decomposed computation with Serial.

const ranks = 3

func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(asMainEnv); ok { // a rank of TestSteerUnderMPIExec
		os.Args = append([]string{os.Args[0]}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	if _, _, ok := mpi.FromLauncher(); !ok || !mpi.Enabled {
		os.Exit(m.Run())
	}
	if err := mpi.Init(); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(2)
	}
	code := m.Run()
	if code != 0 {
		os.Exit(code) // without Finalize, which may wait for a failed test's messages; mpiexec ends the job
	}
	if err := mpi.Finalize(); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		code = 2
	}
	os.Exit(code)
}

// oneRank returns a world of one rank, or skips t.
func oneRank(t *testing.T) *mpi.Comm {
	t.Helper()
	w := mpi.World()
	if w.Size() != 1 {
		t.Skip("needs a world of one rank: the build without the tag mpi")
	}
	return w
}

// hot is stable Params with a hot top edge.
var hot = Params{Dt: 0.2, Alpha: 1, Boundary: 100}

// run advances s until Step is to, first applying, at each steering point,
// the changes of that Step as Serial does (the last of a Step wins).
func run(t *testing.T, ctx context.Context, s *Sim, to int, changes []Change) {
	t.Helper()
	for s.Step < to {
		for _, c := range changes {
			if c.Step == s.Step {
				s.Params = c.P
			}
		}
		if err := s.Advance(ctx); err != nil {
			t.Fatalf("step %d: %v", s.Step+1, err)
		}
	}
}

// sameField fails t unless got and want hold the same numbers (==), rows
// of nx cells numbered from row0.
func sameField(t *testing.T, got, want []float64, nx, row0 int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d cells, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("cell (row %d, column %d) = %v, want %v", row0+i/nx, i%nx, got[i], want[i])
		}
	}
}

func TestRowsOf(t *testing.T) {
	tests := []struct {
		ny, size int
		want     [][2]int // row0, rows of each rank
	}{
		{10, 1, [][2]int{{0, 10}}},
		{10, 2, [][2]int{{0, 5}, {5, 5}}},
		{10, 3, [][2]int{{0, 4}, {4, 3}, {7, 3}}},
		{11, 3, [][2]int{{0, 4}, {4, 4}, {8, 3}}},
		{3, 3, [][2]int{{0, 1}, {1, 1}, {2, 1}}},
		{7, 4, [][2]int{{0, 2}, {2, 2}, {4, 2}, {6, 1}}},
		{1000, 7, nil},
		{1003, 64, nil},
	}
	for _, tt := range tests {
		next := 0 // the first row not yet held by a rank
		for rank := range tt.size {
			row0, rows := rowsOf(tt.ny, tt.size, rank)
			if tt.want != nil && [2]int{row0, rows} != tt.want[rank] {
				t.Errorf("rowsOf(%d, %d, %d) = %d, %d, want %v", tt.ny, tt.size, rank, row0, rows, tt.want[rank])
			}
			want := tt.ny / tt.size
			if rank < tt.ny%tt.size {
				want++
			}
			if row0 != next || rows != want {
				t.Errorf("rowsOf(%d, %d, %d) = %d, %d: want rows [%d, %d)", tt.ny, tt.size, rank, row0, rows, next, next+want)
			}
			next = row0 + rows
		}
		if next != tt.ny {
			t.Errorf("%d ranks hold %d of %d rows", tt.size, next, tt.ny)
		}
	}
}

func TestSimMatchesSerial(t *testing.T) {
	w := oneRank(t)
	halved := Params{Dt: hot.Dt / 2, Alpha: hot.Alpha, Boundary: hot.Boundary}
	tests := []struct {
		name    string
		nx, ny  int
		steps   int
		p       Params
		changes []Change
		wantTop float64 // the top edge at the end
	}{
		{"smallest", 3, 3, 5, hot, nil, 100},
		{"wide", 17, 5, 40, hot, nil, 100},
		{"tall", 4, 23, 60, hot, nil, 100},
		{"at the stability limit", 32, 32, 100, Params{Dt: 0.125, Alpha: 2, Boundary: 1}, nil, 1},
		{"steered", 12, 9, 50, hot, []Change{
			{Step: 10, P: halved}, // Dt halved after step 10
			{Step: 25, P: Params{Dt: halved.Dt, Alpha: 1, Boundary: -40}}, // the edge cooled after step 25
		}, -40},
		{"steered at the first and last steering points", 7, 11, 30, hot, []Change{
			{Step: 30, P: Params{Dt: 0.01, Alpha: 1, Boundary: 7}}, // never applies
			{Step: 0, P: Params{Dt: 0.1, Alpha: 2, Boundary: 3}},   // before step 1
			{Step: 12, P: Params{Dt: 0.05, Alpha: 3, Boundary: 9}},
			{Step: 12, P: Params{Dt: 0.05, Alpha: 4, Boundary: 50}}, // the last of a step wins
			{Step: 29, P: Params{Dt: 0.05, Alpha: 4, Boundary: 60}}, // before the last step
		}, 60},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSim(tt.nx, tt.ny, tt.p, w)
			if err != nil {
				t.Fatal(err)
			}
			if s.Row0 != 0 || s.Rows != tt.ny || len(s.T) != tt.nx*tt.ny {
				t.Fatalf("one rank holds rows [%d, %d+%d), %d cells", s.Row0, s.Row0, s.Rows, len(s.T))
			}
			run(t, context.Background(), s, tt.steps, tt.changes)
			want, err := Serial(tt.nx, tt.ny, tt.steps, tt.p, tt.changes)
			if err != nil {
				t.Fatal(err)
			}
			sameField(t, s.T, want, tt.nx, 0)
			if s.Step != tt.steps {
				t.Errorf("Step = %d, want %d", s.Step, tt.steps)
			}
			if s.T[tt.nx/2] != tt.wantTop {
				t.Errorf("the top edge is %v, want %v", s.T[tt.nx/2], tt.wantTop)
			}
			if tt.changes != nil { // the changes matter: else this test would not tell
				unsteered, err := Serial(tt.nx, tt.ny, tt.steps, tt.p, nil)
				if err != nil {
					t.Fatal(err)
				}
				if slices.Equal(unsteered, want) {
					t.Error("the changes made no difference")
				}
			}
		})
	}
}

func TestAdvanceAllocatesNothing(t *testing.T) {
	s, err := NewSim(16, 16, hot, oneRank(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if n := testing.AllocsPerRun(20, func() { s.Advance(ctx) }); n != 0 {
		t.Errorf("Advance allocates %v times a step", n)
	}
}

func TestSaveLoad(t *testing.T) {
	w := oneRank(t)
	steered := []Change{{Step: 3, P: Params{Dt: 0.1, Alpha: 1.5, Boundary: 20}}, {Step: 9, P: Params{Dt: 0.2, Alpha: 1, Boundary: 70}}}
	tests := []struct {
		name          string
		nx, ny        int
		saveAt, steps int
		changes       []Change
	}{
		{"at the start", 6, 5, 0, 10, nil},
		{"midway", 13, 8, 7, 20, nil},
		{"steered, saved before a change applies", 9, 10, 9, 25, steered},
		{"steered, saved after the changes", 9, 10, 12, 25, steered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			whole, err := NewSim(tt.nx, tt.ny, hot, w)
			if err != nil {
				t.Fatal(err)
			}
			run(t, ctx, whole, tt.steps, tt.changes)

			first, err := NewSim(tt.nx, tt.ny, hot, w)
			if err != nil {
				t.Fatal(err)
			}
			run(t, ctx, first, tt.saveAt, tt.changes)
			dir := filepath.Join(t.TempDir(), "checkpoints", "a") // Save makes it
			if err := first.Save(dir); err != nil {
				t.Fatal(err)
			}
			entries, err := os.ReadDir(dir)
			if err != nil || len(entries) != 1 || entries[0].Name() != "rank-0.heat" {
				t.Fatalf("the checkpoint directory holds %v (%v), want rank-0.heat alone", entries, err)
			}

			second, err := NewSim(tt.nx, tt.ny, Params{Dt: 0.01, Alpha: 0.5, Boundary: -1}, w)
			if err != nil {
				t.Fatal(err)
			}
			if err := second.Load(dir); err != nil {
				t.Fatal(err)
			}
			if second.Step != first.Step || second.Params != first.Params {
				t.Fatalf("loaded step %d, %+v; saved step %d, %+v", second.Step, second.Params, first.Step, first.Params)
			}
			sameField(t, second.T, first.T, tt.nx, 0)
			run(t, ctx, second, tt.steps, tt.changes)
			sameField(t, second.T, whole.T, tt.nx, 0)

			// A Sim goes back to its checkpoint, and Save replaces it.
			if err := second.Load(dir); err != nil || second.Step != tt.saveAt {
				t.Fatalf("loading again: step %d, %v", second.Step, err)
			}
			run(t, ctx, first, tt.saveAt+1, tt.changes)
			if err := first.Save(dir); err != nil {
				t.Fatal(err)
			}
			if err := second.Load(dir); err != nil || second.Step != tt.saveAt+1 {
				t.Fatalf("loading a replaced checkpoint: step %d, %v", second.Step, err)
			}
		})
	}
}

// wantErr fails t unless err is an error whose message holds each of
// parts.
func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one naming %q", parts)
	}
	for _, part := range parts {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not name %q", err, part)
		}
	}
}

func TestNewSimErrors(t *testing.T) {
	w := oneRank(t)
	tests := []struct {
		name   string
		nx, ny int
		p      Params
		comm   *mpi.Comm
		want   []string
	}{
		{"narrow", 2, 10, hot, w, []string{"NX = 2", "at least 3 columns"}},
		{"flat", 10, 2, hot, w, []string{"NY = 2", "at least 3 rows"}},
		{"no time step", 10, 10, Params{Dt: 0, Alpha: 1}, w, []string{"Dt = 0", "positive"}},
		{"backwards", 10, 10, Params{Dt: -0.1, Alpha: 1}, w, []string{"Dt = -0.1"}},
		{"NaN time step", 10, 10, Params{Dt: math.NaN(), Alpha: 1}, w, []string{"Dt = NaN"}},
		{"no diffusivity", 10, 10, Params{Dt: 0.1, Alpha: 0}, w, []string{"Alpha = 0", "positive"}},
		{"unstable", 10, 10, Params{Dt: 0.3, Alpha: 1}, w, []string{"Dt*Alpha = 0.3", "exceeds 0.25", "stability limit", "Dt <= 0.25"}},
		{"unstable by diffusivity", 10, 10, Params{Dt: 0.1, Alpha: 5}, w, []string{"Dt*Alpha = 0.5", "Dt <= 0.05"}},
		{"infinite edge", 10, 10, Params{Dt: 0.1, Alpha: 1, Boundary: math.Inf(1)}, w, []string{"Boundary = +Inf"}},
		{"no communicator", 10, 10, hot, nil, []string{"no communicator"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSim(tt.nx, tt.ny, tt.p, tt.comm)
			wantErr(t, err, tt.want...)
			if s != nil {
				t.Error("a Sim with the error")
			}
		})
	}
	// More ranks than rows, which one rank cannot show through NewSim.
	wantErr(t, checkGrid(5, 3, 4), "NY = 3 rows cannot be split over 4 ranks")
	if err := checkGrid(5, 4, 4); err != nil {
		t.Error(err)
	}
}

func TestAdvanceErrors(t *testing.T) {
	s, err := NewSim(8, 6, hot, oneRank(t))
	if err != nil {
		t.Fatal(err)
	}
	run(t, context.Background(), s, 3, nil)
	before := slices.Clone(s.T)
	tests := []struct {
		name string
		p    Params
		want []string
	}{
		{"unstable", Params{Dt: 0.5, Alpha: 1, Boundary: 1}, []string{"stability limit", "step 4 not taken"}},
		{"negative diffusivity", Params{Dt: 0.1, Alpha: -1, Boundary: 1}, []string{"Alpha = -1"}},
		{"NaN edge", Params{Dt: 0.1, Alpha: 1, Boundary: math.NaN()}, []string{"Boundary = NaN"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.Params = tt.p
			wantErr(t, s.Advance(context.Background()), tt.want...)
			if s.Step != 3 || !slices.Equal(s.T, before) {
				t.Errorf("a refused step changed the Sim: step %d", s.Step)
			}
		})
	}

	s.Params = hot
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Advance(ctx); !errors.Is(err, context.Canceled) || s.Step != 3 {
		t.Errorf("Advance with an ended context: %v, step %d", err, s.Step)
	}
	if err := s.Advance(context.Background()); err != nil || s.Step != 4 {
		t.Errorf("Advance after the errors: %v, step %d", err, s.Step)
	}
}

func TestSerialErrors(t *testing.T) {
	tests := []struct {
		name          string
		nx, ny, steps int
		changes       []Change
		want          []string
	}{
		{"narrow", 1, 5, 3, nil, []string{"NX = 1"}},
		{"flat", 5, 0, 3, nil, []string{"NY = 0"}},
		{"negative steps", 5, 5, -1, nil, []string{"-1 steps"}},
		{"negative change", 5, 5, 3, []Change{{Step: -2, P: hot}}, []string{"change at step -2"}},
		{"unstable change", 5, 5, 10, []Change{{Step: 3, P: Params{Dt: 1, Alpha: 1}}}, []string{"stability limit", "step 4 not taken"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			field, err := Serial(tt.nx, tt.ny, tt.steps, hot, tt.changes)
			wantErr(t, err, tt.want...)
			if field != nil {
				t.Error("a field with the error")
			}
		})
	}
	// An unstable change that never applies is no error, as for Advance.
	if _, err := Serial(5, 5, 3, hot, []Change{{Step: 3, P: Params{Dt: 1, Alpha: 1}}}); err != nil {
		t.Error(err)
	}
}

func TestLoadErrors(t *testing.T) {
	w := oneRank(t)
	ctx := context.Background()
	saved, err := NewSim(8, 6, hot, w)
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, saved, 5, nil)
	dir := t.TempDir()
	if err := saved.Save(dir); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "rank-0.heat")
	checkpoint, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// edited returns a directory holding the checkpoint changed by edit.
	edited := func(edit func([]byte) []byte) string {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, "rank-0.heat"), edit(slices.Clone(checkpoint)), 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	header := func(old, new string) string {
		return edited(func(b []byte) []byte {
			if !bytes.Contains(b, []byte(old)) {
				t.Fatalf("the checkpoint's header has no %s", old)
			}
			return bytes.Replace(b, []byte(old), []byte(new), 1)
		})
	}
	tests := []struct {
		name   string
		nx, ny int
		dir    string
		want   []string
	}{
		{"other width", 9, 6, dir, []string{"saved with NX = 8", "has NX = 9"}},
		{"other height", 8, 7, dir, []string{"saved with NY = 6", "has NY = 7"}},
		{"other rank", 8, 6, header(`"Rank":0,`, `"Rank":1,`), []string{"saved with Rank = 1", "has Rank = 0"}},
		{"other size", 8, 6, header(`"Size":1,`, `"Size":2,`), []string{"saved with Size = 2", "has Size = 1"}},
		{"truncated", 8, 6, edited(func(b []byte) []byte { return b[:len(b)-8] }), []string{"376 bytes of field data, want 384"}},
		{"not a checkpoint", 8, 6, edited(func([]byte) []byte { return []byte("hello") }), []string{"no header line"}},
		{"other format", 8, 6, header("checkpoint 1:", "checkpoint 2:"), []string{"unknown format"}},
		{"unstable", 8, 6, header(`"Dt":0.2`, `"Dt":2`), []string{"stability limit"}},
		{"missing", 8, 6, t.TempDir(), []string{"rank-0.heat"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSim(tt.nx, tt.ny, hot, w)
			if err != nil {
				t.Fatal(err)
			}
			run(t, ctx, s, 2, nil)
			before := slices.Clone(s.T)
			wantErr(t, s.Load(tt.dir), tt.want...)
			if s.Step != 2 || s.Params != hot || !slices.Equal(s.T, before) {
				t.Error("a failed Load changed the Sim")
			}
		})
	}
	s, _ := NewSim(8, 6, hot, w)
	if err := s.Load(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("loading a missing checkpoint: %v, want fs.ErrNotExist", err)
	}
}

func TestHeatFlows(t *testing.T) {
	const nx, ny, steps = 16, 24, 300
	s, err := NewSim(nx, ny, hot, oneRank(t))
	if err != nil {
		t.Fatal(err)
	}
	run(t, context.Background(), s, steps, nil)
	mean := func(g int) float64 {
		var sum float64
		for _, v := range s.T[g*nx+1 : (g+1)*nx-1] {
			sum += v
		}
		return sum / (nx - 2)
	}
	top, middle, bottom := mean(1), mean(ny/2), mean(ny-2)
	if !(top > middle && middle > bottom && bottom > 0) {
		t.Errorf("mean temperatures from the hot edge down: %v, %v, %v: want them decreasing and above 0", top, middle, bottom)
	}
	for i, v := range s.T {
		if v < 0 || v > hot.Boundary {
			t.Fatalf("cell (row %d, column %d) = %v, outside the edges' [0, %v]", i/nx, i%nx, v, hot.Boundary)
		}
	}
	for g := 1; g < ny-1; g++ { // symmetric left to right, up to the rounding
		for j := range nx / 2 {
			if a, b := s.T[g*nx+j], s.T[g*nx+nx-1-j]; math.Abs(a-b) > 1e-9*hot.Boundary {
				t.Fatalf("row %d: column %d = %v, column %d = %v", g, j, a, nx-1-j, b)
			}
		}
	}
}

// TestUnderMPIExec runs the TestRank tests in this test binary as ranks
// of a real MPI job.
func TestUnderMPIExec(t *testing.T) {
	if !mpi.Enabled {
		t.Skip("needs the build with the tag mpi")
	}
	if mpi.Initialized() {
		t.Skip("a rank")
	}
	mpiexec, args := testenv.MPIExec(t, ranks)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args = append(args, os.Args[0], "-test.run", "^TestRank", "-test.v")
	out, err := exec.CommandContext(ctx, mpiexec, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("mpiexec: %v\n%s", err, out)
	}
	for _, name := range []string{"MatchesSerial", "SaveLoad", "Interrupted"} {
		if got := strings.Count(string(out), "--- PASS: TestRank"+name+" ("); got != ranks {
			t.Fatalf("%d ranks passed TestRank%s, want %d:\n%s", got, name, ranks, out)
		}
	}
}

// rankOnly returns the world of a rank under mpiexec, or skips t.
func rankOnly(t *testing.T) *mpi.Comm {
	t.Helper()
	if !mpi.Enabled || !mpi.Initialized() {
		t.Skip("runs as a rank under mpiexec (TestUnderMPIExec)")
	}
	w := mpi.World()
	if w.Size() != ranks {
		t.Fatalf("world size %d, want %d", w.Size(), ranks)
	}
	return w
}

// rankContext bounds a rank test's waits for the other ranks, so that a
// failure on one rank fails the others instead of leaving them waiting.
func rankContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// share returns rank s's rows of a whole field.
func share(s *Sim, whole []float64) []float64 {
	return whole[s.Row0*s.NX : (s.Row0+s.Rows)*s.NX]
}

func TestRankMatchesSerial(t *testing.T) {
	w := rankOnly(t)
	ctx := rankContext(t)
	tests := []struct {
		nx, ny, steps int
		changes       []Change
	}{
		{5, 3, 10, nil}, // a row each: the edge rows travel as halos
		{8, 10, 40, nil},
		{11, 11, 40, nil},
		{6, 4, 20, nil}, // rank 0 holds the top edge and an interior row
		{12, 17, 60, []Change{
			{Step: 0, P: Params{Dt: 0.1, Alpha: 1, Boundary: 30}},
			{Step: 20, P: Params{Dt: 0.05, Alpha: 1, Boundary: 30}},
			{Step: 35, P: Params{Dt: 0.05, Alpha: 1, Boundary: 80}},
		}},
	}
	for _, tt := range tests {
		s, err := NewSim(tt.nx, tt.ny, hot, w)
		if err != nil {
			t.Fatal(err)
		}
		if row0, rows := rowsOf(tt.ny, ranks, w.Rank()); s.Row0 != row0 || s.Rows != rows || len(s.T) != rows*tt.nx {
			t.Fatalf("%dx%d: rank %d holds rows [%d, %d+%d) in %d cells", tt.ny, tt.nx, w.Rank(), s.Row0, s.Row0, s.Rows, len(s.T))
		}
		run(t, ctx, s, tt.steps, tt.changes)
		want, err := Serial(tt.nx, tt.ny, tt.steps, hot, tt.changes)
		if err != nil {
			t.Fatal(err)
		}
		sameField(t, s.T, share(s, want), tt.nx, s.Row0)
	}
}

func TestRankSaveLoad(t *testing.T) {
	w := rankOnly(t)
	ctx := rankContext(t)
	const nx, ny = 9, 13
	changes := []Change{{Step: 8, P: Params{Dt: 0.15, Alpha: 1, Boundary: 60}}}
	first, err := NewSim(nx, ny, hot, w)
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, first, 12, changes)
	dir := t.TempDir()
	if err := first.Save(dir); err != nil {
		t.Fatal(err)
	}
	second, err := NewSim(nx, ny, Params{Dt: 0.1, Alpha: 1}, w)
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Load(dir); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, second, 30, changes)
	want, err := Serial(nx, ny, 30, hot, changes)
	if err != nil {
		t.Fatal(err)
	}
	sameField(t, second.T, share(second, want), nx, second.Row0)
}

// cancelAfter is a context that cancels itself when its Err is called for
// the (n+1)th time. Advance calls Err once before it starts a step, so an
// n of 1 interrupts the wait in the step's halo exchange.
type cancelAfter struct {
	context.Context
	cancel context.CancelFunc
	n      int
}

func (c *cancelAfter) Err() error {
	if c.n == 0 {
		c.cancel()
	}
	c.n--
	return c.Context.Err()
}

// TestRankInterrupted interrupts rank 1 in the halo exchange of step 11,
// after it has sent its rows and before its neighbours have: ranks 0 and
// 2 do step 11, all steer, and rank 1's next Advance finishes its step 11
// with the Params it began with.
func TestRankInterrupted(t *testing.T) {
	w := rankOnly(t)
	ctx := rankContext(t)
	const nx, ny = 9, 8
	steered := Params{Dt: 0.1, Alpha: 1.5, Boundary: 40}
	s, err := NewSim(nx, ny, hot, w)
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, s, 10, nil) // heat reaches rank 1's rows, so that Params matter there
	if w.Rank() == 1 {
		inner, cancel := context.WithCancel(context.Background())
		err := s.Advance(&cancelAfter{Context: inner, cancel: cancel, n: 1})
		if !errors.Is(err, context.Canceled) || s.Step != 10 {
			t.Errorf("Advance interrupted: %v, step %d", err, s.Step)
		}
		if err := s.Save(t.TempDir()); err == nil || !strings.Contains(err.Error(), "half done") {
			t.Errorf("Save with step 11 half done: %v", err)
		}
		if err := s.Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "half done") {
			t.Errorf("Load with step 11 half done: %v", err)
		}
	}
	if err := w.Barrier(ctx); err != nil { // rank 1 has sent its rows
		t.Fatal(err)
	}
	if w.Rank() != 1 {
		run(t, ctx, s, 11, nil)
	}
	if err := w.Barrier(ctx); err != nil { // the others have done step 11
		t.Fatal(err)
	}
	s.Params = steered
	if w.Rank() == 1 {
		if err := s.Advance(ctx); err != nil || s.Step != 11 {
			t.Fatalf("finishing step 11: %v, step %d", err, s.Step)
		}
	}
	run(t, ctx, s, 20, nil)
	want, err := Serial(nx, ny, 20, hot, []Change{{Step: 11, P: steered}})
	if err != nil {
		t.Fatal(err)
	}
	sameField(t, s.T, share(s, want), nx, s.Row0)
}
