package console

import (
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/engine"
	"github.com/ipcluster/ipcluster/internal/clustertest"
)

// steeringSession starts two engines whose "program" runs a loop with a
// steering point, each exposing dt and its two rows of a 2x3 field, and a
// console on them.
func steeringSession(t *testing.T) (*Session, *syncBuffer, context.Context) {
	t.Helper()
	c := clustertest.Start(t, clustertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	var stop atomic.Bool
	var loops sync.WaitGroup
	for r := range 2 {
		dt, field := 1.0, []float64{float64(r), 1, 2, 3, 4, 5}
		e := c.AddEngineWith(t, engine.Options{JobKey: "sim", Rank: r, Size: 2}, func(_ int, e *engine.Engine) error {
			if err := e.Expose("dt", &dt); err != nil {
				return err
			}
			return e.Expose("T", &field, engine.Shape(2, 3))
		})
		loops.Go(func() {
			for step := 0; !stop.Load() && e.Steer(step); step++ {
			}
		})
	}
	t.Cleanup(func() { stop.Store(true); c.Stop(t); loops.Wait() })
	cl, err := client.Connect(ctx, client.Options{Connection: c.Controller.ClientInfo(), Network: c.Net})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	if _, err := cl.WaitForJob(ctx, "sim", 2); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	return New(cl, out), out, ctx
}

func TestConsoleSteersAJob(t *testing.T) {
	s, out, ctx := steeringSession(t)
	picture := filepath.Join(t.TempDir(), "T.png")
	for _, tc := range []struct{ input, want string }{
		{"job = rc.job(1)", ""},
		{"p = job.pause()", ""},
		{"job.status()[1]['paused']", "True\n"},
		{"job.pull('dt')", "{0: 1.0, 1: 1.0}\n"},
		{"job.set(dt = 0.25) == p", "True\n"},
		{"job.pull('dt')", "{0: 0.25, 1: 0.25}\n"},
		{"T = job.gather('T')", ""},
		{"T.shape", "[4, 3]\n"},
		{"T.max(), T.step == p", "(5.0, True)\n"},
		{"plot(T, '" + picture + "')", ""},
		{"job.step(5) - p", "5\n"},
		{"job.execute('dt * 2')", "{0: 0.5, 1: 0.5}\n"},
		{"job.resume() == p + 5", "True\n"},
	} {
		out.Reset()
		if err := s.Eval(ctx, tc.input); err != nil {
			t.Fatalf("%q: %v", tc.input, err)
		}
		if got := out.String(); got != tc.want {
			t.Errorf("%q printed %q, want %q", tc.input, got, tc.want)
		}
	}
	f, err := os.Open(picture)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("plot wrote no PNG: %v", err)
	}
	for _, tc := range []struct{ input, want string }{
		{"job.set(0.5)", "give the variables as keywords"},
		{"job.set(nope = 1)", `exposes no variable "nope"`},
		{"plot({}, 'x.png')", "want a field"},
	} {
		err := s.Eval(ctx, tc.input)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error saying %q", tc.input, err, tc.want)
		}
	}
}
