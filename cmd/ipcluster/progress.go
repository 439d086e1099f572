package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ipcluster/ipcluster/client"
)

// progress shows how far a wait has come: on a terminal, a bar redrawn in
// place; elsewhere (a log, a pipe), a plain line each time the count
// changes.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	label string
	last  int
	drawn bool
}

func newProgress(w io.Writer, label string) *progress {
	return &progress{w: w, tty: isTerminal(w), label: label, last: -1}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// update shows have of want.
func (p *progress) update(have, want int) { p.updateNote(have, want, "") }

// updateNote shows have of want, and a note after the count.
func (p *progress) updateNote(have, want int, note string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if have == p.last && p.drawn {
		return
	}
	p.last, p.drawn = have, true
	if note != "" {
		note = ", " + note
	}
	if !p.tty {
		fmt.Fprintf(p.w, "%s: %d/%d%s\n", p.label, have, want, note)
		return
	}
	const width = 30
	full := 0
	if want > 0 {
		full = min(width, have*width/want)
	}
	fmt.Fprintf(p.w, "\r%s: [%s%s] %d/%d%s\x1b[K", p.label, strings.Repeat("#", full), strings.Repeat(".", width-full), have, want, note)
}

// clear removes the bar from a terminal, so that output takes its place.
func (p *progress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
}

// watchTasks shows the progress of a call's tasks on w once it has run
// for a second: tasks done of all, and engines still busy with it. It
// returns the bar (to clear before other output) and a function that stops
// it and clears the bar.
func watchTasks(r *client.AsyncResult, w io.Writer) (bar *progress, stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	p := newProgress(w, "tasks done")
	go func() {
		defer close(finished)
		defer p.clear()
		first := time.NewTimer(time.Second)
		defer first.Stop()
		select {
		case <-done:
			return
		case <-r.Done():
			return
		case <-first.C:
		}
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			md := r.Metadata()
			finishedTasks := 0
			for _, m := range md {
				if m.Status != "pending" {
					finishedTasks++
				}
			}
			p.updateNote(finishedTasks, len(md), fmt.Sprintf("%d busy", len(md)-finishedTasks))
			select {
			case <-done:
				return
			case <-r.Done():
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	return p, func() {
		once.Do(func() { close(done) })
		<-finished
	}
}

// end finishes the bar's line, if one was drawn.
func (p *progress) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
	}
}
