package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// progress shows how far a wait has come: on a terminal, a bar redrawn in
// place; elsewhere (a log, a pipe), a plain line each time the count
// changes.
type progress struct {
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
func (p *progress) update(have, want int) {
	if have == p.last && p.drawn {
		return
	}
	p.last, p.drawn = have, true
	if !p.tty {
		fmt.Fprintf(p.w, "%s: %d/%d\n", p.label, have, want)
		return
	}
	const width = 30
	full := 0
	if want > 0 {
		full = min(width, have*width/want)
	}
	fmt.Fprintf(p.w, "\r%s: [%s%s] %d/%d", p.label, strings.Repeat("#", full), strings.Repeat(".", width-full), have, want)
}

// end finishes the bar's line, if one was drawn.
func (p *progress) end() {
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
	}
}
