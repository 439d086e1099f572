package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/ipcluster/ipcluster/mpi"
)

// The numerical core: a 2-D heat equation, u_t = Alpha*(u_xx + u_yy) on a
// grid of spacing 1, by explicit finite differences (forward Euler in
// time, the 5-point stencil in space), with the grid's rows split over the
// ranks of an MPI communicator. Each step, a rank trades its first and
// last rows with the ranks above and below (halo rows), then updates its
// own rows.

// maxK is the stability limit of the explicit scheme on a grid of spacing
// 1: Dt*Alpha must not exceed 1/4.
const maxK = 0.25

// Tags of the halo messages, by the direction they travel in.
const (
	tagDown = 1 // a rank's last row, to the rank below (Rank+1)
	tagUp   = 2 // a rank's first row, to the rank above (Rank-1)
)

// Params are the physical parameters a client may steer between steps.
type Params struct {
	Dt       float64 // time step
	Alpha    float64 // diffusivity
	Boundary float64 // temperature held on the top edge (row 0); the other three edges are held at 0
}

// check reports Params the scheme cannot step with.
func (p Params) check() error {
	switch {
	case !(p.Dt > 0) || math.IsInf(p.Dt, 1):
		return fmt.Errorf("heat: Dt = %g: the time step must be positive and finite", p.Dt)
	case !(p.Alpha > 0) || math.IsInf(p.Alpha, 1):
		return fmt.Errorf("heat: Alpha = %g: the diffusivity must be positive and finite", p.Alpha)
	case p.Dt*p.Alpha > maxK:
		return fmt.Errorf("heat: Dt*Alpha = %g exceeds %g, the stability limit of the explicit scheme (dx = dy = 1): "+
			"use Dt <= %g for Alpha = %g", p.Dt*p.Alpha, maxK, maxK/p.Alpha, p.Alpha)
	case math.IsNaN(p.Boundary) || math.IsInf(p.Boundary, 0):
		return fmt.Errorf("heat: Boundary = %g: the edge temperature must be finite", p.Boundary)
	}
	return nil
}

// Sim is one rank's share of an NY x NX grid: rows [Row0, Row0+Rows).
//
// Clients steer a run by setting the embedded Params between calls to
// Advance. A Sim is not safe for concurrent use.
type Sim struct {
	NX, NY     int
	Rank, Size int
	Row0, Rows int
	Params               // embedded: s.Dt, s.Alpha, s.Boundary are the steerable values
	T          []float64 // this rank's rows, Rows*NX row-major, WITHOUT halo rows: a view into the current buffer, re-sliced after every step so &s.T always reads the current field
	Step       int       // steps done

	comm *mpi.Comm
	// cur holds the field after Step steps, next receives the following
	// step: (Rows+2)*NX each, a halo row above and below this rank's rows.
	cur, next []float64

	// The halo exchange of the step in progress, and the Params that step
	// began with; pending when an interrupted Advance left the step for
	// the next Advance to finish.
	reqs       [4]*mpi.Request // receives from above and below, sends to above and below; nil when done or absent
	stepParams Params
	pending    bool
	// failed is an MPI error that ended a halo exchange: the Sim cannot go on.
	failed error
}

// NewSim splits ny rows as evenly as possible over comm's ranks (the first
// ny%size ranks get one more row) and sets the initial field (all 0 inside;
// boundary rows/columns per Params). Errors: nx<3, ny<size, ny<3,
// non-positive Dt/Alpha, an unstable Dt*Alpha > 0.25 (dx=dy=1) with a
// message naming the limit.
//
// All of row 0, corners included, is p.Boundary; row ny-1 and the first
// and last columns of the other rows are 0. Every rank of comm calls
// NewSim with the same arguments. In the build without MPI, mpi.World()
// is one rank even before mpi.Init, so NewSim then holds the whole grid.
func NewSim(nx, ny int, p Params, comm *mpi.Comm) (*Sim, error) {
	if comm == nil {
		return nil, errors.New("heat: no communicator")
	}
	size, rank := comm.Size(), comm.Rank()
	if size < 1 {
		return nil, errors.New("heat: the communicator has no ranks: is MPI initialised (mpi.Init)?")
	}
	if err := checkGrid(nx, ny, size); err != nil {
		return nil, err
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	row0, rows := rowsOf(ny, size, rank)
	s := &Sim{
		NX: nx, NY: ny,
		Rank: rank, Size: size,
		Row0: row0, Rows: rows,
		Params: p,
		comm:   comm,
		cur:    make([]float64, (rows+2)*nx),
		next:   make([]float64, (rows+2)*nx),
	}
	s.setEdges(s.cur, p.Boundary)
	s.T = s.field()
	return s, nil
}

// checkGrid reports an nx by ny grid that cannot be split over size ranks,
// or that has no interior cell.
func checkGrid(nx, ny, size int) error {
	switch {
	case nx < 3:
		return fmt.Errorf("heat: NX = %d: the grid needs at least 3 columns (two edges and an interior)", nx)
	case ny < 3:
		return fmt.Errorf("heat: NY = %d: the grid needs at least 3 rows (two edges and an interior)", ny)
	case ny < size:
		return fmt.Errorf("heat: NY = %d rows cannot be split over %d ranks: each rank needs at least one row", ny, size)
	}
	return nil
}

// rowsOf returns the rows [row0, row0+rows) that rank holds of ny rows
// split over size ranks: ny/size each, and one more for each of the
// first ny%size ranks.
func rowsOf(ny, size, rank int) (row0, rows int) {
	base, extra := ny/size, ny%size
	rows = base
	if rank < extra {
		rows++
	}
	return rank*base + min(rank, extra), rows
}

// field returns this rank's rows of the current buffer, without the halos.
func (s *Sim) field() []float64 { return s.cur[s.NX : (s.Rows+1)*s.NX] }

// setEdges sets the Dirichlet cells of this rank's rows of buf (a buffer
// with halo rows) for an edge temperature top.
func (s *Sim) setEdges(buf []float64, top float64) {
	for r := range s.Rows {
		i := (r + 1) * s.NX
		setEdges(buf[i:i+s.NX], s.Row0+r, s.NY, top)
	}
}

// setEdges sets the Dirichlet cells of row g of an ny-row grid: all of row
// 0 to top, all of row ny-1 to 0, the first and last cells of the others
// to 0.
func setEdges(row []float64, g, ny int, top float64) {
	switch g {
	case 0:
		for j := range row {
			row[j] = top
		}
	case ny - 1:
		clear(row)
	default:
		row[0], row[len(row)-1] = 0, 0
	}
}

// updateRow writes the next step of a row's interior cells, mid[1:n-1],
// into dst, from the row and its neighbours up and down, with k = Dt*Alpha.
// Advance and Serial both step through this one function, so that they do
// the same arithmetic in the same order, down to the rounding (and to
// whether the compiler fuses a multiply and an add: it is not inlined, so
// there is one compiled copy of the expression).
//
//go:noinline
func updateRow(dst, up, mid, down []float64, k float64) {
	n := len(mid)
	dst, up, down = dst[:n], up[:n], down[:n] // one bounds check each, not one a cell
	for j := 1; j < n-1; j++ {
		dst[j] = mid[j] + k*(up[j]+down[j]+mid[j-1]+mid[j+1]-4*mid[j])
	}
}

// Advance does one time step: exchanges halo rows with the ranks above and
// below (nonblocking Isend/Irecv then Wait, ctx passed through), then
// updates every interior cell with the 5-point stencil: u' = u +
// Dt*Alpha*(u[i-1][j]+u[i+1][j]+u[i][j-1]+u[i][j+1]-4u[i][j]). Global
// boundary cells (row 0, row NY-1, column 0, column NX-1) are Dirichlet:
// row 0 = Boundary, others 0 — applied every step so a steered Boundary
// takes effect on the next step. Checks stability of the current Params
// (error, no step taken, if Dt*Alpha > 0.25 or non-positive).
//
// The step uses the Params as they are when it begins: the edges are set
// to them before the exchange, so the rows next to the edges already see
// a steered Boundary. Every rank must call Advance as often as the others,
// with the same Params: the halo messages pair a rank's step with its
// neighbours' same step.
//
// If ctx has ended, Advance returns its cause without starting the step.
// If ctx ends while Advance waits for the neighbours' rows, Advance
// returns an error wrapping ctx's cause, and the step stays half done:
// Step is unchanged, and the next Advance finishes this step, with the
// Params it began with, instead of starting another (the messages in
// flight belong to it). An interrupt can thus leave ranks one step apart;
// calling Advance on each until Step reaches a common target realigns
// them. Save and Load refuse while a step is half done. An MPI error in
// the exchange is final: every later Advance returns it.
func (s *Sim) Advance(ctx context.Context) error {
	if s.failed != nil {
		return s.failed
	}
	if !s.pending {
		if err := s.Params.check(); err != nil {
			return fmt.Errorf("%w (step %d not taken)", err, s.Step+1)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("heat: step %d not started: %w", s.Step+1, context.Cause(ctx))
		}
		s.stepParams = s.Params
		s.setEdges(s.cur, s.stepParams.Boundary)
		if err := s.startExchange(); err != nil {
			s.failed = fmt.Errorf("heat: step %d: the halo exchange failed, the simulation cannot go on: %w", s.Step+1, err)
			if s.inFlight() {
				keep(s) // MPI holds the buffers of the requests already started
			}
			return s.failed
		}
	}
	if err := s.waitExchange(ctx); err != nil {
		return err
	}
	s.update(s.stepParams)
	return nil
}

// startExchange starts the receives of the halo rows from the ranks above
// and below, then the sends of this rank's first and last rows to them.
// With one rank there is nothing to exchange.
func (s *Sim) startExchange() error {
	nx, last := s.NX, s.Rows*s.NX // last: the start of this rank's last row in cur
	var err error
	if s.Rank > 0 {
		if s.reqs[0], err = mpi.Irecv(s.comm, s.cur[:nx], s.Rank-1, tagDown); err != nil {
			return err
		}
	}
	if s.Rank < s.Size-1 {
		if s.reqs[1], err = mpi.Irecv(s.comm, s.cur[last+nx:last+2*nx], s.Rank+1, tagUp); err != nil {
			return err
		}
	}
	if s.Rank > 0 {
		if s.reqs[2], err = mpi.Isend(s.comm, s.cur[nx:2*nx], s.Rank-1, tagUp); err != nil {
			return err
		}
	}
	if s.Rank < s.Size-1 {
		if s.reqs[3], err = mpi.Isend(s.comm, s.cur[last:last+nx], s.Rank+1, tagDown); err != nil {
			return err
		}
	}
	return nil
}

// peer returns the rank that s.reqs[i] talks to.
func (s *Sim) peer(i int) int {
	if i%2 == 0 {
		return s.Rank - 1
	}
	return s.Rank + 1
}

// waitExchange waits for the halo exchange to complete. If ctx ends first,
// it leaves the step pending, to be finished by the next Advance.
func (s *Sim) waitExchange(ctx context.Context) error {
	for i, r := range s.reqs {
		if r == nil {
			continue
		}
		if _, err := r.Wait(ctx); err != nil {
			if done, _, _ := r.Test(); done { // MPI failed it: final
				s.failed = fmt.Errorf("heat: step %d: the halo exchange with rank %d failed, the simulation cannot go on: %w",
					s.Step+1, s.peer(i), err)
				s.pending = false
				keep(s) // the other requests may still be running
				return s.failed
			}
			if !s.pending {
				s.pending = true
				keep(s)
			}
			return fmt.Errorf("heat: step %d interrupted in the halo exchange with rank %d (the next Advance finishes it): %w",
				s.Step+1, s.peer(i), err)
		}
		s.reqs[i] = nil
	}
	if s.pending {
		s.pending = false
		release(s)
	}
	return nil
}

// inFlight reports whether a request of the halo exchange is unfinished.
func (s *Sim) inFlight() bool {
	return slices.ContainsFunc(s.reqs[:], func(r *mpi.Request) bool { return r != nil })
}

// update computes the next step from cur (halos received) into next with
// Params p, and makes it the current field.
func (s *Sim) update(p Params) {
	nx, k := s.NX, p.Dt*p.Alpha
	for r := range s.Rows {
		if g := s.Row0 + r; g == 0 || g == s.NY-1 {
			continue // an edge row: Dirichlet, set below
		}
		i := (r + 1) * nx
		updateRow(s.next[i:i+nx], s.cur[i-nx:i], s.cur[i:i+nx], s.cur[i+nx:i+2*nx], k)
	}
	s.setEdges(s.next, p.Boundary)
	s.cur, s.next = s.next, s.cur
	s.T = s.field()
	s.Step++
}

// unfinished keeps the Sims whose halo exchange is left running, by an
// interrupt or an error, reachable until it completes, whatever becomes of
// them: MPI may still use their buffers, and the runtime panics if it
// collects an mpi.Request that still pins its buffer.
var unfinished = struct {
	sync.Mutex
	sims map[*Sim]struct{}
}{sims: map[*Sim]struct{}{}}

// keep holds s in unfinished.
func keep(s *Sim) {
	unfinished.Lock()
	unfinished.sims[s] = struct{}{}
	unfinished.Unlock()
}

// release lets s go from unfinished once its exchange has completed.
func release(s *Sim) {
	unfinished.Lock()
	delete(unfinished.sims, s)
	unfinished.Unlock()
}

// checkpointFormat names the layout of a file written by Save, in its
// header.
const checkpointFormat = "ipcluster heat checkpoint 1: a JSON header line, then Rows*NX float64 little-endian, row-major"

// header is the first line of a checkpoint file.
type header struct {
	Format                               string
	NX, NY, Rank, Size, Row0, Rows, Step int
	Params                               Params
}

// checkpointPath returns the file of rank's state in dir.
func checkpointPath(dir string, rank int) string {
	return filepath.Join(dir, fmt.Sprintf("rank-%d.heat", rank))
}

// Save writes this rank's state to dir/rank-<rank>.heat (create dir 0755
// if needed): a small self-describing binary or JSON header (NX, NY, Rank,
// Size, Row0, Rows, Step, Params) followed by the field as little-endian
// float64. Atomic: write a temp file in dir and rename.
//
// The header is one line of JSON; the float64 values of the Params
// round-trip exactly. Save refuses while a step is half done (see Advance).
func (s *Sim) Save(dir string) error {
	if s.pending {
		return fmt.Errorf("heat: cannot save while step %d is half done (its halo exchange was interrupted): call Advance to finish it", s.Step+1)
	}
	head, err := json.Marshal(header{
		Format: checkpointFormat,
		NX:     s.NX, NY: s.NY, Rank: s.Rank, Size: s.Size, Row0: s.Row0, Rows: s.Rows,
		Step: s.Step, Params: s.Params,
	})
	if err != nil {
		return fmt.Errorf("heat: saving: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("heat: saving: %w", err)
	}
	path := checkpointPath(dir, s.Rank)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("heat: saving: %w", err)
	}
	if err := writeCheckpoint(f, head, s.T); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("heat: saving %s: %w", path, err)
	}
	err = f.Close()
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("heat: saving %s: %w", path, err)
	}
	return nil
}

// writeCheckpoint writes the header line and the field to f, and flushes
// them to its disk.
func writeCheckpoint(f *os.File, head []byte, field []float64) error {
	w := bufio.NewWriter(f)
	w.Write(head)
	w.WriteByte('\n')
	var b [8]byte
	for _, v := range field {
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(v))
		w.Write(b[:])
	}
	if err := w.Flush(); err != nil { // reports the first failed write
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	return f.Sync()
}

// Load restores this rank's state saved by Save, checking that NX, NY,
// Rank, Size match (error naming the mismatch).
//
// It restores T, Step and Params; on any error the Sim is unchanged. Load
// refuses while a step is half done (see Advance).
func (s *Sim) Load(dir string) error {
	if s.pending {
		return fmt.Errorf("heat: cannot load while step %d is half done (its halo exchange was interrupted): call Advance to finish it", s.Step+1)
	}
	path := checkpointPath(dir, s.Rank)
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("heat: loading: %w", err)
	}
	line, field, ok := bytes.Cut(data, []byte{'\n'})
	var h header
	if !ok {
		return fmt.Errorf("heat: loading %s: no header line: not a checkpoint", path)
	}
	if err := json.Unmarshal(line, &h); err != nil {
		return fmt.Errorf("heat: loading %s: the header: %w", path, err)
	}
	if h.Format != checkpointFormat {
		return fmt.Errorf("heat: loading %s: unknown format %q", path, h.Format)
	}
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"NX", h.NX, s.NX}, {"NY", h.NY, s.NY}, {"Rank", h.Rank, s.Rank}, {"Size", h.Size, s.Size},
		{"Row0", h.Row0, s.Row0}, {"Rows", h.Rows, s.Rows},
	} {
		if c.got != c.want {
			return fmt.Errorf("heat: loading %s: it was saved with %s = %d, this Sim has %s = %d "+
				"(saved: NX=%d NY=%d Rank=%d Size=%d; this Sim: NX=%d NY=%d Rank=%d Size=%d)",
				path, c.name, c.got, c.name, c.want, h.NX, h.NY, h.Rank, h.Size, s.NX, s.NY, s.Rank, s.Size)
		}
	}
	if want := s.Rows * s.NX * 8; len(field) != want {
		return fmt.Errorf("heat: loading %s: %d bytes of field data, want %d (Rows*NX float64)", path, len(field), want)
	}
	if h.Step < 0 {
		return fmt.Errorf("heat: loading %s: step %d is negative", path, h.Step)
	}
	if err := h.Params.check(); err != nil {
		return fmt.Errorf("heat: loading %s: %w", path, err)
	}
	for i := range s.T {
		s.T[i] = math.Float64frombits(binary.LittleEndian.Uint64(field[8*i:]))
	}
	s.Step, s.Params = h.Step, h.Params
	return nil
}

// Change is a steering action replayed by Serial: at the steering point
// after step Step (i.e. before step Step+1 runs), Params become P.
type Change struct {
	Step int
	P    Params
}

// Serial computes the whole NY x NX field after steps steps on one
// process, starting from the same initial field as NewSim with p and
// applying changes (sorted by Step) as Advance sequences would see them.
// It must produce bit-for-bit the same numbers as the decomposed
// computation (same arithmetic per cell, same operation order), so tests
// can compare with ==.
//
// Changes of the same Step apply in their order in changes (the last
// wins); those at or after step steps have no effect. A Params that
// Advance would refuse is an error when its first step would run.
func Serial(nx, ny, steps int, p Params, changes []Change) ([]float64, error) {
	if err := checkGrid(nx, ny, 1); err != nil {
		return nil, err
	}
	if steps < 0 {
		return nil, fmt.Errorf("heat: %d steps: the number of steps must not be negative", steps)
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	changes = slices.Clone(changes)
	slices.SortStableFunc(changes, func(a, b Change) int { return cmp.Compare(a.Step, b.Step) })
	if len(changes) > 0 && changes[0].Step < 0 {
		return nil, fmt.Errorf("heat: a change at step %d: steps are not negative", changes[0].Step)
	}

	cur, next := make([]float64, ny*nx), make([]float64, ny*nx)
	edges := func(buf []float64, top float64) {
		for g := range ny {
			setEdges(buf[g*nx:(g+1)*nx], g, ny, top)
		}
	}
	edges(cur, p.Boundary)
	for step := range steps { // steps done so far
		for len(changes) > 0 && changes[0].Step == step {
			p = changes[0].P
			changes = changes[1:]
		}
		if err := p.check(); err != nil {
			return nil, fmt.Errorf("%w (step %d not taken)", err, step+1)
		}
		edges(cur, p.Boundary)
		k := p.Dt * p.Alpha
		for g := 1; g < ny-1; g++ {
			i := g * nx
			updateRow(next[i:i+nx], cur[i-nx:i], cur[i:i+nx], cur[i+nx:i+2*nx], k)
		}
		edges(next, p.Boundary)
		cur, next = next, cur
	}
	return cur, nil
}
