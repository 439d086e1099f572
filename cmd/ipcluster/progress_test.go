package main

import (
	"bytes"
	"testing"
)

func TestProgress(t *testing.T) {
	for _, tc := range []struct {
		name string
		tty  bool
		want string
	}{
		// Elsewhere, a line each time the count changes.
		{"plain", false, "ranks: 1/4\nranks: 3/4\nranks: 4/4\n"},
		// On a terminal, one line redrawn, ended once.
		{"terminal", true, "\rranks: [#######.......................] 1/4\x1b[K" +
			"\rranks: [######################........] 3/4\x1b[K" +
			"\rranks: [##############################] 4/4\x1b[K\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			p := newProgress(&b, "ranks")
			p.tty = tc.tty
			for _, n := range []int{1, 1, 3, 4} {
				p.update(n, 4)
			}
			p.end()
			if b.String() != tc.want {
				t.Errorf("got  %q\nwant %q", b.String(), tc.want)
			}
		})
	}
	var b bytes.Buffer
	newProgress(&b, "x").end()
	if b.Len() != 0 {
		t.Errorf("end without an update wrote %q", b.String())
	}
}
