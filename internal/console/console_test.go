package console

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/engine"
	"github.com/ipcluster/ipcluster/internal/clustertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// session starts a cluster of n engines (ranks of one job) and a console.
func session(t *testing.T, n int) (*Session, *syncBuffer, context.Context) {
	t.Helper()
	c := clustertest.Start(t, clustertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	// One at a time, so that engine ids are the ranks.
	for i := range n {
		c.AddEngineWith(t, engine.Options{JobKey: "job", Rank: i, Size: n}, func(_ int, e *engine.Engine) error {
			return e.Register("square", func(x int) int { return x * x })
		})
		if err := c.Controller.WaitEngines(ctx, i+1); err != nil {
			t.Fatal(err)
		}
	}
	// The console's client hands output to the session, as the command's does.
	var session atomic.Pointer[Session]
	cl, err := client.Connect(ctx, client.Options{Connection: c.Controller.ClientInfo(), Network: c.Net,
		OnOutput: func(o client.Output) {
			if s := session.Load(); s != nil {
				s.Output(o)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	if _, err := cl.WaitForJob(ctx, "job", n); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	s := New(cl, out)
	session.Store(s)
	return s, out, ctx
}

// syncBuffer is a bytes.Buffer that streamed output may write from the
// client's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (b *syncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.Reset()
}

// run evaluates inputs and returns what they printed.
func run(t *testing.T, s *Session, out *syncBuffer, ctx context.Context, inputs ...string) string {
	t.Helper()
	out.Reset()
	for _, in := range inputs {
		if err := s.Eval(ctx, in); err != nil {
			t.Fatalf("%q: %v\n%s", in, err, out)
		}
	}
	return out.String()
}

// The session, minus the terminal.
func TestSession(t *testing.T) {
	s, out, ctx := session(t, 4)
	for _, tc := range []struct {
		inputs []string
		want   string
	}{
		{[]string{"rc.ids"}, "[0, 1, 2, 3]\n"},
		{[]string{"%px x = engine.id * 10", "%px print(x)"}, "[0] 0\n[1] 10\n[2] 20\n[3] 30\n"},
		{[]string{`rc[:].pull("x")`}, "{0: 0, 1: 10, 2: 20, 3: 30}\n"},
		{[]string{`rc[1:3].apply("square", 3)`}, "{1: 9, 2: 9}\n"},
		{[]string{"%px x + 1"}, "[0] Out: 1\n[1] Out: 11\n[2] Out: 21\n[3] Out: 31\n"},
		{[]string{"%%px\ny = x * 2\nprint(y)\n"}, "[0] 0\n[1] 20\n[2] 40\n[3] 60\n"},
		{[]string{"%targets 1,3", "%px engine.id"}, "targets: [1 3] [1 3]\n[1] Out: 1\n[3] Out: 3\n"},
		{[]string{"%job 1", "%px engine.rank"}, "targets: job 1, engines [0 1 2 3] in rank order\n[0] Out: 0\n[1] Out: 1\n[2] Out: 2\n[3] Out: 3\n"},
		{[]string{"%autopx", "z = engine.id", "%autopx", "rc[0].pull('z')"}, "%autopx enabled: every input runs on the engines; %autopx again to stop\n%autopx disabled\n{0: 0}\n"},
		{[]string{"n = len(rc.ids)\nprint('engines:', n)"}, "engines: 4\n"},
		{[]string{`rc.job(1).execute("engine.rank * 2")`}, "{0: 0, 1: 2, 2: 4, 3: 6}\n"},
		{[]string{"%targets 0,1", "%px engine.id * 2", "%result"}, "targets: [0 1] [0 1]\n[0] Out: 0\n[1] Out: 2\n[0] Out: 0\n[1] Out: 2\n"},
	} {
		if got := run(t, s, out, ctx, tc.inputs...); got != tc.want {
			t.Errorf("%q printed\n%s\nwant\n%s", tc.inputs, got, tc.want)
		}
	}
}

// Streamed output comes line by line as the engines print, each line
// prefixed by its engine (engines interleave; each engine's lines keep
// their order).
func TestSessionStreamed(t *testing.T) {
	s, out, ctx := session(t, 3)
	got := run(t, s, out, ctx, "%output streamed", "%px print('a')\nprint('b')\n7")
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if lines[0] != "output: streamed as it comes, each line prefixed by its engine" || len(lines) != 10 {
		t.Fatalf("streamed output:\n%s", got)
	}
	for id := range 3 {
		a := slices.Index(lines, fmt.Sprintf("[%d] a", id))
		b := slices.Index(lines, fmt.Sprintf("[%d] b", id))
		out := slices.Index(lines, fmt.Sprintf("[%d] Out: 7", id))
		if a < 0 || b < a || out < b {
			t.Errorf("engine %d's lines out of order:\n%s", id, got)
		}
	}
	if got := run(t, s, out, ctx, "%output grouped", "%output"); got != "output: grouped by engine, after each cell\n"+
		"output: grouped by engine, after each cell\n" {
		t.Errorf("%%output grouped: %q", got)
	}
	if err := s.Eval(ctx, "%output sideways"); err == nil {
		t.Error("an unknown output mode was accepted")
	}
}

// Errors name what went wrong; the session goes on.
func TestSessionErrors(t *testing.T) {
	s, out, ctx := session(t, 2)
	for _, tc := range []struct {
		input string
		want  string // in the error or the output
	}{
		{"%px 1 // 0", "[0] StarlarkError: <px 1>:1:3: floored division by zero"},
		{"%nope", "unknown magic %nope"},
		{"%job x", "%job needs a job number"},
		{"%targets 1-x", `"1-x" is not a range`},
		{"%px", "%px needs code"},
		{"undefined_name", "undefined: undefined_name"},
		{"rc[5]", "index 5 out of range"},
		{"rc[:].push(1)", "want a dict with string keys"},
		{"%result", "floored division by zero"},
	} {
		out.Reset()
		err := s.Eval(ctx, tc.input)
		text := out.String()
		if err != nil {
			text += err.Error()
		}
		if !strings.Contains(text, tc.want) {
			t.Errorf("%q: %q, want %q", tc.input, text, tc.want)
		}
	}
	if got := run(t, s, out, ctx, "rc.ids"); got != "[0, 1]\n" {
		t.Errorf("after the errors: %q", got)
	}
}

// Interrupt ends a cell that runs forever on every target.
func TestSessionInterrupt(t *testing.T) {
	s, _, ctx := session(t, 2)
	done := make(chan error)
	go func() { done <- s.Eval(ctx, "%px while True:\n    pass") }()
	// Eval marks the cell running once it is sent.
	for !s.Interrupt() {
		select {
		case err := <-done:
			t.Fatalf("the cell ended by itself: %v", err)
		case <-time.After(time.Millisecond): // polling a condition
		}
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "failed on 2 of 2 engines") {
		t.Errorf("the interrupted cell: %v", err)
	}
}

func TestNeedsMore(t *testing.T) {
	s := &Session{}
	for input, want := range map[string]bool{
		"":                         false,
		"x = 1":                    false,
		"x = (1,":                  true,
		"x = (1,\n 2)":             false,
		"def f():":                 true,
		"def f():\n    return 1":   true,
		"def f():\n    return 1\n": false,
		"for i in range(3):":       true,
		"%px x = 1":                false,
		"%%px":                     true,
		"%%px\nx = 1":              true,
		"%%px\nx = 1\n":            false,
		"s = 'open":                true, // until an empty line shows the error
		"s = 'open\n":              false,
		"print(\"a\",":             true,
		"%targets 1":               false,
		"if x:\n    pass\nelse:":   true,
		"if x:\n    pass\nelse:\n": false,
		"x = [\n1,\n2,":            true,
		"x = [\n1,\n2,\n":          false, // an empty line ends the input
	} {
		if got := s.NeedsMore(input); got != want {
			t.Errorf("NeedsMore(%q) = %v, want %v", input, got, want)
		}
	}
}

func TestComplete(t *testing.T) {
	s := New(nil, nil)
	s.globals["total"] = nil
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"%a", []string{"%autopx"}},
		{"%%", []string{"%%px"}},
		{"rc.pu", []string{"rc.pull", "rc.push"}},
		{"x = tot", []string{"total"}},
		{"le", []string{"len"}},
	} {
		if got := s.Complete(tc.line, len(tc.line)); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("Complete(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}
