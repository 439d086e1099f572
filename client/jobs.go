package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ipcluster/ipcluster/wire"
)

// JobInfo describes a job: the engines one launcher started together, such
// as the ranks of one MPI job or the engines of `ipcluster start`. The
// controller numbers jobs from 1 in the order their first engine registers;
// numbers are not reused while the controller runs.
type JobInfo struct {
	ID      int      // the controller's number for the job
	Key     string   // the launcher's key for it ($IPCLUSTER_JOB)
	Size    int      // the MPI size its ranks report; 0 if they are not MPI ranks
	Engines []int    // ids of its registered engines, in rank order
	Ranks   []int    // their ranks, in the same order
	Hosts   []string // the hosts they run on, sorted
}

// Complete reports whether every rank of an MPI job is registered.
func (j JobInfo) Complete() bool { return j.Size > 0 && len(j.Engines) == j.Size }

// jobs groups the registered engines by job, in job order.
func (r registry) jobs() []JobInfo {
	byID := map[int][]wire.EngineInfo{}
	for _, e := range r {
		if e.Job > 0 {
			byID[e.Job] = append(byID[e.Job], e)
		}
	}
	out := make([]JobInfo, 0, len(byID))
	for id, engines := range byID {
		slices.SortFunc(engines, func(a, b wire.EngineInfo) int {
			return cmp.Or(cmp.Compare(a.Rank, b.Rank), cmp.Compare(a.ID, b.ID))
		})
		j := JobInfo{ID: id, Key: engines[0].JobKey}
		for _, e := range engines {
			j.Size = max(j.Size, e.Size)
			j.Engines = append(j.Engines, e.ID)
			j.Ranks = append(j.Ranks, e.Rank)
			if !slices.Contains(j.Hosts, e.Host) {
				j.Hosts = append(j.Hosts, e.Host)
			}
		}
		slices.Sort(j.Hosts)
		out = append(out, j)
	}
	slices.SortFunc(out, func(a, b JobInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Jobs returns the jobs that have registered engines, by job id, as last
// told by the controller.
func (c *Client) Jobs() []JobInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.engines.jobs()
}

// WaitForJob waits until n engines of the job a launcher started with the
// given key ($IPCLUSTER_JOB) have registered, and returns the job. It is
// for launchers, which know their key before the controller numbers the
// job.
func (c *Client) WaitForJob(ctx context.Context, key string, n int) (JobInfo, error) {
	var job JobInfo
	err := c.waitFor(ctx, func(r registry) (bool, string) {
		have := 0
		for _, j := range r.jobs() {
			if j.Key == key {
				job, have = j, len(j.Engines)
			}
		}
		return have >= n, fmt.Sprintf("waiting for %d engines of job %q (%d registered)", n, key, have)
	})
	return job, err
}

// Job returns a handle on the job with the given id. It is cheap, and
// valid whether or not the job exists: calls on it resolve the job's
// engines when they are made.
func (c *Client) Job(id int) *Job { return &Job{c: c, id: id} }

// Job is a handle on one job: its engines addressed by rank.
type Job struct {
	c  *Client
	id int
}

// ID returns the job's id.
func (j *Job) ID() int { return j.id }

// Info describes the job as last told by the controller; ok is false if it
// has no registered engines.
func (j *Job) Info() (info JobInfo, ok bool) {
	for _, info := range j.c.Jobs() {
		if info.ID == j.id {
			return info, true
		}
	}
	return JobInfo{ID: j.id}, false
}

// View returns a DirectView over the job's engines in rank order, so that
// the results of ResultList come in rank order too.
func (j *Job) View() *DirectView { return j.c.DirectView(JobRanks(j.id)) }

// Ranks returns a DirectView over the given ranks of the job, in that order.
func (j *Job) Ranks(ranks ...int) *DirectView { return j.c.DirectView(JobRanks(j.id, ranks...)) }

// Stop shuts down the job's engines and waits until the controller has
// seen all of them go; the launcher's processes then exit. A job whose
// program steers is first stopped at a steering point, the same step on
// every rank (engine.Steer returns false there), so that ranks waiting on
// each other in MPI leave their loop together.
func (j *Job) Stop(ctx context.Context) error {
	ids, err := j.c.resolve(JobRanks(j.id))
	if err != nil {
		return err
	}
	if _, err := j.steerStep(ctx, wire.Steering{Op: wire.SteerStop}); err != nil && !refusedAll(err, "NotSteering", "SteerStopped") {
		return err
	}
	// Engines whose program has ended its loop may be leaving already:
	// shut down those still registered.
	for {
		left, err := j.c.resolve(JobRanks(j.id))
		if err != nil {
			break // none left
		}
		err = j.c.control(ctx, wire.Shutdown, left, wire.ShutdownContent{}, nil)
		var ce *ControllerError
		if err == nil {
			break
		}
		if !errors.As(err, &ce) || ce.Type != "UnknownEngine" {
			return err
		}
	}
	return j.c.waitFor(ctx, func(r registry) (bool, string) {
		left := 0
		for _, id := range ids {
			if _, ok := r[id]; ok {
				left++
			}
		}
		return left == 0, fmt.Sprintf("stopping job %d (%d of %d engines left)", j.id, left, len(ids))
	})
}

type jobTarget struct {
	job   int
	ranks []int
}

// JobRanks targets engines of a job by rank, in the order given; with no
// ranks, every registered engine of the job in rank order.
func JobRanks(job int, ranks ...int) Target { return jobTarget{job, slices.Clone(ranks)} }

func (t jobTarget) resolve(reg registry) ([]int, error) {
	var info *JobInfo
	jobs := reg.jobs()
	for i := range jobs {
		if jobs[i].ID == t.job {
			info = &jobs[i]
		}
	}
	if info == nil {
		ids := make([]int, len(jobs))
		for i, j := range jobs {
			ids[i] = j.ID
		}
		return nil, fmt.Errorf("client: job %d has no registered engines (jobs: %v)", t.job, ids)
	}
	if len(t.ranks) == 0 {
		return slices.Clone(info.Engines), nil
	}
	out := make([]int, len(t.ranks))
	for i, r := range t.ranks {
		k := slices.Index(info.Ranks, r)
		if k < 0 {
			return nil, fmt.Errorf("client: job %d has no registered rank %d (ranks: %v)", t.job, r, info.Ranks)
		}
		out[i] = info.Engines[k]
	}
	return out, nil
}

func (t jobTarget) String() string {
	if len(t.ranks) == 0 {
		return fmt.Sprintf("job %d", t.job)
	}
	return fmt.Sprintf("job %d ranks %v", t.job, t.ranks)
}

// refusedAll reports whether every task of a failed call failed with an
// error of one of the given types.
func refusedAll(err error, types ...string) bool {
	errs := []error{err}
	var ce *CompositeError
	if errors.As(err, &ce) {
		errs = ce.Errors
	}
	for _, e := range errs {
		var re *RemoteError
		if !errors.As(e, &re) || !slices.Contains(types, re.Type) {
			return false
		}
	}
	return true
}
