package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/internal/console"
	"github.com/ipcluster/ipcluster/internal/profile"
)

func newConsole(g *globals) *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "console [SCRIPT]",
		Short: "An interactive console on the cluster: Starlark here, and on the engines with %px",
		Long: `Console is a REPL on the cluster. Its own language is Starlark, with rc
bound to the connected client; magics run code cells on the engines:

  rc.ids                     the engines
  %px x = engine.id * 10     a cell on the targets; output grouped by engine
  %px print(x)
  rc[:].pull("x")            {id: value}
  %%px                       a cell of several lines, ended by an empty line
  %autopx                    every input runs on the engines, until %autopx
  %targets 0-3 | %job 1      choose the engines
  %output streamed           output as it comes, prefixed by engine
  %result, %engines, %interrupt, %help

On a terminal: line editing, history (kept in the profile directory), Tab
completion of magics and names, and Ctrl-C interrupts the engines' running
work (at the prompt it discards the line; Ctrl-D ends the console). Input
that is not a terminal is read line by line, so that scripts can pipe a
session in; a SCRIPT file is read the same way, and the console exits after
it, with status 1 if any input failed.

A job whose program steers (engine.Steer in its loop, as examples/heat) is
steered through rc.job(n): status(), pause(), resume(), step(n), set(dt=0.1),
pull("dt") {rank: value}, gather("T") (the field of all ranks), call(fn, ...),
checkpoint(dir), and execute(code) with the exposed variables in scope; all
but status act at the same step on every rank. plot(field, "T.png") writes a
heat map (a 2-D field) or a line plot.`,
		Example: `  ipcluster console
  ipcluster console examples/heat/steer.star
  ipcluster console --ssh alice@login.cluster.org      # a cluster on the login node, from a laptop
  ipcluster console --file cluster.json --ssh alice@login.cluster.org
  ipcluster console < session.star`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				cmd.SetIn(f)
			}
			return runConsole(cmd, g, &cf)
		},
	}
	cf.add(cmd, "file", "f")
	return cmd
}

func runConsole(cmd *cobra.Command, g *globals, cf *clientFlags) error {
	// The console handles Ctrl-C itself: it interrupts the engines.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	var session atomic.Pointer[console.Session]
	opts := cf.options(g)
	opts.OnOutput = func(o client.Output) {
		if s := session.Load(); s != nil {
			s.Output(o)
		}
	}
	c, err := client.Connect(cmd.Context(), opts)
	if err != nil {
		return err
	}
	defer c.Close()
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	s := console.New(c, out)
	session.Store(s)
	s.Watch = func(r *client.AsyncResult) func() {
		_, stop := watchTasks(r, errOut)
		return stop
	}
	go func() {
		for sig := range sigs {
			if sig == syscall.SIGTERM {
				cancel()
				return
			}
			s.Interrupt()
		}
	}()

	if f, ok := cmd.InOrStdin().(*os.File); ok && term.IsTerminal(int(f.Fd())) && isTerminal(out) {
		p, err := profile.Open(g.profile)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "ipcluster console: %d engines (%s). %%help for help, Ctrl-D to leave.\n", len(c.IDs()), c.Endpoint())
		return terminalLoop(ctx, s, f, out.(*os.File), errOut, filepath.Join(p.Dir, "console_history"))
	}
	return lineLoop(ctx, s, cmd.InOrStdin(), errOut)
}

// lineLoop reads inputs line by line from a pipe or file.
func lineLoop(ctx context.Context, s *console.Session, in io.Reader, errOut io.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var input []string
	failed := 0
	eval := func() {
		text := strings.Join(input, "\n")
		input = input[:0]
		if err := s.Eval(ctx, text); err != nil {
			failed++
			fmt.Fprintln(errOut, "error:", err)
		}
	}
	for sc.Scan() {
		if ctx.Err() != nil {
			break
		}
		input = append(input, sc.Text())
		if !s.NeedsMore(strings.Join(input, "\n")) {
			eval()
		}
	}
	if len(input) > 0 {
		eval()
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d inputs failed", failed)
	}
	return nil
}

// terminalLoop reads inputs with line editing. The terminal is raw while
// a line is read, and back to normal while an input runs, so that output
// shows as usual and Ctrl-C is a signal that interrupts the engines.
func terminalLoop(ctx context.Context, s *console.Session, in, out *os.File, errOut io.Writer, historyPath string) error {
	fd := int(in.Fd())
	keys := &ctrlC{r: in}
	t := term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{keys, out}, s.Prompt(false))
	hist, err := openHistory(historyPath)
	if err != nil {
		fmt.Fprintln(errOut, "ipcluster console: no history:", err)
	} else {
		defer hist.Close()
		t.History = hist
	}
	t.AutoCompleteCallback = func(line string, pos int, key rune) (string, int, bool) {
		if key != '\t' {
			return "", 0, false
		}
		return complete(s, line, pos)
	}
	var input []string
	for ctx.Err() == nil {
		if w, h, err := term.GetSize(fd); err == nil && w > 0 && h > 0 {
			t.SetSize(w, h)
		}
		t.SetPrompt(s.Prompt(len(input) > 0))
		state, err := term.MakeRaw(fd)
		if err != nil {
			return err
		}
		line, err := t.ReadLine()
		term.Restore(fd, state)
		if keys.interrupted.Swap(false) {
			fmt.Fprintln(out, "KeyboardInterrupt")
			input = input[:0]
			continue
		}
		if errors.Is(err, io.EOF) {
			fmt.Fprintln(out)
			return nil
		}
		if err != nil {
			return err
		}
		input = append(input, line)
		text := strings.Join(input, "\n")
		if s.NeedsMore(text) {
			continue
		}
		input = input[:0]
		if err := s.Eval(ctx, text); err != nil {
			fmt.Fprintln(errOut, "error:", err)
		}
	}
	return nil
}

// ctrlC passes keys to the terminal, turning Ctrl-C (which raw mode
// delivers as a byte) into "discard the line": Ctrl-U, then Enter, with
// interrupted set.
type ctrlC struct {
	r           io.Reader
	interrupted atomic.Bool
}

func (k *ctrlC) Read(p []byte) (int, error) {
	n, err := k.r.Read(p)
	for i := range p[:n] {
		if p[i] == 3 {
			k.interrupted.Store(true)
			// Drop what follows Ctrl-C in this read; end the line.
			p[i] = 21 // Ctrl-U: delete the line before the cursor
			if i+1 < len(p) {
				p[i+1] = '\r'
				return i + 2, err
			}
			return i + 1, err
		}
	}
	return n, err
}

// complete completes the word before pos: all the way if one candidate,
// else as far as the candidates agree.
func complete(s *console.Session, line string, pos int) (string, int, bool) {
	cands := s.Complete(line, pos)
	if len(cands) == 0 {
		return "", 0, false
	}
	word := line[:pos]
	if i := strings.LastIndexAny(word, " \t([,=+-*/"); i >= 0 {
		word = word[i+1:]
	}
	common := cands[0]
	for _, c := range cands[1:] {
		for !strings.HasPrefix(c, common) {
			common = common[:len(common)-1]
		}
	}
	if len(common) <= len(word) {
		return "", 0, false
	}
	add := common[len(word):]
	return line[:pos] + add + line[pos:], pos + len(add), true
}

// history is the console's history, kept in a file of the profile.
type history struct {
	lines []string // oldest first
	f     *os.File
}

const historyMax = 1000

func openHistory(path string) (*history, error) {
	h := &history{}
	if data, err := os.ReadFile(path); err == nil {
		for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
			if l != "" {
				h.lines = append(h.lines, strings.ReplaceAll(l, `\n`, "\n"))
			}
		}
		h.lines = h.lines[max(0, len(h.lines)-historyMax):]
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	h.f = f
	return h, nil
}

func (h *history) Add(entry string) {
	if strings.TrimSpace(entry) == "" || (len(h.lines) > 0 && h.lines[len(h.lines)-1] == entry) {
		return
	}
	h.lines = append(h.lines, entry)
	if len(h.lines) > historyMax {
		h.lines = h.lines[1:]
	}
	fmt.Fprintln(h.f, strings.ReplaceAll(entry, "\n", `\n`))
}

func (h *history) Len() int        { return len(h.lines) }
func (h *history) At(i int) string { return h.lines[len(h.lines)-1-i] }
func (h *history) Close() error    { return h.f.Close() }
