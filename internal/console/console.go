// Package console is ipcluster's interactive console: a REPL whose own
// language is Starlark, with rc bound to a connected client, and
// IPython-style magics that run code cells on engines (%px, %%px,
// %autopx). The terminal (line editing, history, Ctrl-C) is the caller's:
// a Session evaluates complete inputs and says when an input needs more
// lines.
package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/engine/cell"
)

// Magics are the console's commands, for help and completion.
var Magics = []string{"%autopx", "%engines", "%help", "%interrupt", "%job", "%output", "%px", "%%px", "%result", "%targets"}

// dialect is the console's own Starlark: as on the engines.
var dialect = &syntax.FileOptions{Set: true, While: true, TopLevelControl: true, GlobalReassign: true, Recursion: true}

// Session is one console session.
type Session struct {
	c      *client.Client
	out    io.Writer
	target client.Target
	autopx bool

	// Watch, if set, is called when the session starts waiting for a call
	// on the engines, and the function it returns when the wait is over:
	// the terminal shows progress with it.
	Watch func(*client.AsyncResult) (stop func())

	globals starlark.StringDict
	cells   int

	mu        sync.Mutex
	last      *client.AsyncResult // of the last %px, for %result and Interrupt
	running   bool
	runningOn client.Target  // the engines of the running call
	stream    bool           // print output as it comes rather than grouped by engine
	partial   map[int][]byte // streamed output not yet ended by a newline, by engine
}

// New returns a session on c that writes to out.
func New(c *client.Client, out io.Writer) *Session {
	s := &Session{c: c, out: out, target: client.All, partial: map[int][]byte{}}
	s.globals = starlark.StringDict{"rc": &rcValue{s: s}, "plot": plotBuiltin()}
	return s
}

// Prompt is what to show before the next input.
func (s *Session) Prompt(continuation bool) string {
	switch {
	case continuation:
		return "...        "
	case s.autopx:
		return "ipcluster[px]> "
	}
	return "ipcluster> "
}

// NeedsMore reports whether input (lines joined by newlines) is not yet
// complete: a %%px cell or a Starlark block (a first line ending in ":")
// until an empty line, or Starlark with brackets or a string left open. An
// empty line always ends the input (an incomplete one then shows its
// error).
func (s *Session) NeedsMore(input string) bool {
	lines := strings.Split(input, "\n")
	first := strings.TrimSpace(lines[0])
	lastBlank := len(lines) > 1 && strings.TrimSpace(lines[len(lines)-1]) == ""
	switch {
	case first == "", lastBlank:
		return false
	case strings.HasPrefix(first, "%%px"), strings.HasSuffix(first, ":"):
		return true
	case strings.HasPrefix(first, "%"):
		return false
	}
	_, err := dialect.Parse("<input>", input, 0)
	var se syntax.Error
	if !errors.As(err, &se) {
		return false
	}
	// Open brackets and strings fail at the end of the input.
	return int(se.Pos.Line) >= len(lines) && strings.Contains(se.Msg, "end of file") ||
		strings.Contains(se.Msg, "unexpected EOF") || strings.Contains(se.Msg, "unclosed")
}

// Eval evaluates one complete input.
func (s *Session) Eval(ctx context.Context, input string) error {
	trimmed := strings.TrimSpace(input)
	switch {
	case trimmed == "":
		return nil
	case strings.HasPrefix(trimmed, "%%px"):
		_, body, _ := strings.Cut(input, "\n")
		return s.px(ctx, body)
	case strings.HasPrefix(trimmed, "%"):
		return s.magic(ctx, trimmed)
	case s.autopx:
		return s.px(ctx, input)
	}
	return s.local(ctx, input)
}

// magic runs a %command.
func (s *Session) magic(ctx context.Context, line string) error {
	name, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	switch name {
	case "%px":
		if arg == "" {
			return errors.New("%px needs code: %px x = engine.id")
		}
		return s.px(ctx, arg)
	case "%autopx":
		s.autopx = !s.autopx
		if s.autopx {
			fmt.Fprintln(s.out, "%autopx enabled: every input runs on the engines; %autopx again to stop")
		} else {
			fmt.Fprintln(s.out, "%autopx disabled")
		}
		return nil
	case "%targets":
		if arg != "" {
			t, err := ParseTargets(arg)
			if err != nil {
				return err
			}
			s.target = t
		}
		ids, err := s.c.DirectView(s.target).Targets()
		fmt.Fprintf(s.out, "targets: %s %v\n", s.target, ids)
		return err
	case "%job":
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 {
			return fmt.Errorf("%%job needs a job number, as ipcluster engines shows: %%job 1")
		}
		s.target = client.JobRanks(n)
		ids, err := s.c.DirectView(s.target).Targets()
		fmt.Fprintf(s.out, "targets: %s, engines %v in rank order\n", s.target, ids)
		return err
	case "%result":
		s.mu.Lock()
		last := s.last
		s.mu.Unlock()
		if last == nil {
			return errors.New("no %px has run yet")
		}
		return s.show(ctx, last, false)
	case "%engines":
		return s.engines(ctx)
	case "%output":
		switch arg {
		case "streamed":
			s.setStream(true)
		case "grouped":
			s.setStream(false)
		case "":
		default:
			return fmt.Errorf("%%output %s: say grouped (each engine's output after the cell) or streamed (as it comes, prefixed)", arg)
		}
		mode := "grouped by engine, after each cell"
		if s.streaming() {
			mode = "streamed as it comes, each line prefixed by its engine"
		}
		fmt.Fprintln(s.out, "output:", mode)
		return nil
	case "%interrupt":
		return s.c.Interrupt(ctx, s.target)
	case "%help":
		io.WriteString(s.out, help)
		return nil
	}
	return fmt.Errorf("unknown magic %s (magics: %s)", name, strings.Join(Magics, " "))
}

const help = `The console runs Starlark here, with rc the connected client:
  rc.ids                      engine ids
  rc[:].pull("x")             {id: value} from every engine; rc[0], rc[1:3] for some
  rc[:].push({"x": 1})        assign on engines
  rc[:].apply("f", 1, 2)      call a registered or cell-defined function
  rc.job(1).execute("code")   a cell on a job's ranks, in rank order
  rc.jobs()                   the jobs
Magics:
  %px CODE                    run CODE on the targets, show output by engine
  %%px                        the lines that follow, to an empty line, as one cell
  %autopx                     every input runs on the engines, until %autopx again
  %targets [all|0,2,4-7]      show or set the targets
  %job N                      target job N's ranks
  %result                     show the last %px again
  %output [grouped|streamed]  output by engine after each cell, or as it comes
  %engines                    the engines and what they do
  %interrupt                  interrupt the targets' running work (Ctrl-C does too)
`

// px runs code on the targets and shows the outcome, grouped by engine.
func (s *Session) px(ctx context.Context, code string) error {
	s.cells++
	streamed := s.begin(s.target)
	defer s.end()
	r, err := s.c.DirectView(s.target).ExecuteNamed(ctx, fmt.Sprintf("<px %d>", s.cells), code)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.last = r
	s.mu.Unlock()
	return s.show(ctx, r, streamed)
}

// begin marks a call on the engines of t as running, for Interrupt and
// for streamed output, and reports whether its output is streamed.
func (s *Session) begin(t client.Target) (streamed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running, s.runningOn = true, t
	return s.stream
}

// end marks the call over, ending any streamed line left unfinished.
func (s *Session) end() {
	s.flushPartial()
	s.mu.Lock()
	s.running = false
	s.mu.Unlock()
}

// flushPartial ends the streamed lines left unfinished.
func (s *Session) flushPartial() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for engine, buf := range s.partial {
		if len(buf) > 0 {
			fmt.Fprintf(s.out, "[%d] %s\n", engine, buf)
		}
	}
	clear(s.partial)
}

// show waits for a %px result and prints each engine's output (unless it
// was streamed) and value, in target order.
func (s *Session) show(ctx context.Context, r *client.AsyncResult, streamed bool) error {
	if err := s.wait(ctx, r); err != nil {
		return err
	}
	values, _ := client.Results[any](ctx, r)
	failed := 0
	if streamed {
		s.flushPartial()
	}
	for _, md := range r.Metadata() {
		prefix := fmt.Sprintf("[%d] ", md.Engine)
		for _, text := range []string{md.Stdout, md.Stderr} {
			if text != "" && !streamed {
				fmt.Fprint(s.out, prefixLines(prefix, text))
			}
		}
		if md.Err != nil {
			failed++
			fmt.Fprint(s.out, prefixLines(prefix, describe(md.Err)))
		} else if v := values[md.Engine]; v != nil {
			fmt.Fprintf(s.out, "%sOut: %s\n", prefix, repr(v))
		}
	}
	if failed > 0 {
		return fmt.Errorf("the cell failed on %d of %d engines", failed, len(r.Metadata()))
	}
	return nil
}

// wait waits for r, with progress shown if the session watches.
func (s *Session) wait(ctx context.Context, r *client.AsyncResult) error {
	if s.Watch != nil {
		defer s.Watch(r)()
	}
	return r.Wait(ctx)
}

func describe(err error) string {
	var re *client.RemoteError
	if errors.As(err, &re) {
		return re.Type + ": " + re.Message
	}
	return err.Error()
}

// Output takes output of the engines as the client receives it (from
// client.Options.OnOutput): in streamed mode the console prints it at once,
// line by line, each line prefixed by its engine.
func (s *Session) Output(o client.Output) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stream || !s.running {
		return
	}
	buf := append(s.partial[o.Engine], o.Data...)
	for {
		i := strings.IndexByte(string(buf), '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(s.out, "[%d] %s\n", o.Engine, buf[:i])
		buf = buf[i+1:]
	}
	s.partial[o.Engine] = buf
}

func (s *Session) setStream(on bool) {
	s.mu.Lock()
	s.stream = on
	s.mu.Unlock()
}

func (s *Session) streaming() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stream
}

// Interrupt interrupts the work of the running %px, if any; it may be
// called from another goroutine (a Ctrl-C handler). It reports whether
// there was work to interrupt.
func (s *Session) Interrupt() bool {
	s.mu.Lock()
	running, t := s.running, s.runningOn
	s.mu.Unlock()
	if !running {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.c.Interrupt(ctx, t)
	return true
}

// local runs Starlark here, printing the value of an expression.
func (s *Session) local(ctx context.Context, code string) error {
	thread := &starlark.Thread{Name: "console", Print: func(_ *starlark.Thread, msg string) { fmt.Fprintln(s.out, msg) }}
	thread.SetLocal("ctx", ctx)
	if expr, err := dialect.ParseExpr("<console>", code, 0); err == nil {
		v, err := starlark.EvalExprOptions(dialect, thread, expr, s.globals)
		if err != nil {
			return localError(err)
		}
		if v != starlark.None {
			fmt.Fprintln(s.out, v.String())
		}
		return nil
	}
	f, err := dialect.Parse("<console>", code, 0)
	if err != nil {
		return localError(err)
	}
	return localError(starlark.ExecREPLChunk(f, thread, s.globals))
}

func localError(err error) error {
	var eval *starlark.EvalError
	if errors.As(err, &eval) {
		return errors.New(eval.Backtrace())
	}
	return err
}

// Complete returns the completions of the word before pos in line: magics
// at the start, else names of the console's namespace and rc's methods.
func (s *Session) Complete(line string, pos int) []string {
	word := line[:pos]
	if i := strings.LastIndexAny(word, " \t([,=+-*/"); i >= 0 {
		word = word[i+1:]
	}
	var cands []string
	switch {
	case strings.HasPrefix(word, "%"):
		cands = Magics
	case strings.HasPrefix(word, "rc."):
		for _, a := range (&rcValue{s: s}).AttrNames() {
			cands = append(cands, "rc."+a)
		}
	default:
		for name := range s.globals {
			cands = append(cands, name)
		}
		cands = append(cands, starlark.Universe.Keys()...)
	}
	var out []string
	for _, c := range cands {
		if strings.HasPrefix(c, word) && c != word {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// engines prints the engines.
func (s *Session) engines(ctx context.Context) error {
	engines, err := s.c.Engines(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHOST\tPID\tSTATE\tQUEUED\tJOB\tRANK")
	for _, e := range engines {
		rank := "-"
		if e.Size > 0 {
			rank = fmt.Sprintf("%d/%d", e.Rank, e.Size)
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%d\t%d\t%s\n", e.ID, e.Host, e.PID, e.State, e.Queued, e.Job, rank)
	}
	return tw.Flush()
}

// ParseTargets reads "all" or a list of engine ids and ranges ("0,2,4-7").
func ParseTargets(spec string) (client.Target, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" || spec == "all" {
		return client.All, nil
	}
	var ids []int
	for part := range strings.SplitSeq(spec, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("targets %q: %q is not an engine id", spec, part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("targets %q: %q is not a range of engine ids", spec, part)
			}
		}
		for id := a; id <= b; id++ {
			ids = append(ids, id)
		}
	}
	return client.Engines(ids...), nil
}

// repr formats a value from an engine as Starlark prints it.
func repr(v any) string {
	sv, err := cell.ToStarlark(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return sv.String()
}
