// Package cell runs Starlark code cells on an engine: Python-like code that
// a client sends, run in a namespace that lasts from cell to cell and that
// push and pull share, with print streamed as the cell runs, cancellation
// from the task's context, and errors that name the file, line and
// offending code with the Starlark backtrace.
package cell

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// dialect is the language of cells: Starlark with the Python features that
// interactive use expects (while loops, sets, recursion, top-level if and
// for, reassigning globals).
var dialect = &syntax.FileOptions{Set: true, While: true, TopLevelControl: true, GlobalReassign: true, Recursion: true}

// ResultName is the global to which a cell's last expression is assigned,
// as in Python's interactive interpreter.
const ResultName = "_"

// contextKey is the thread-local key of the cell's context.
const contextKey = "ipcluster.context"

// Context returns the context of the cell thread runs, for builtins that
// wait (MPI collectives, registered functions): it ends when the cell is
// interrupted.
func Context(thread *starlark.Thread) context.Context {
	if ctx, ok := thread.Local(contextKey).(context.Context); ok {
		return ctx
	}
	return context.Background()
}

// Namespace is an engine's Starlark namespace: the globals that cells and
// pushes define, over builtins (modules, registered functions) that cells
// see as globals too. It is used by one goroutine at a time.
type Namespace struct {
	globals  starlark.StringDict
	builtins starlark.StringDict
	sources  map[string]string // the code of recent cells, by file name, for errors
	order    []string          // their names, oldest first
}

// keptSources bounds how many cells' code a namespace keeps for errors.
const keptSources = 1000

// NewNamespace returns an empty namespace whose cells see builtins.
func NewNamespace(builtins starlark.StringDict) *Namespace {
	n := &Namespace{builtins: builtins, sources: map[string]string{}}
	n.Clear()
	return n
}

// Clear forgets every variable; the builtins are back.
func (n *Namespace) Clear() {
	n.globals = maps.Clone(n.builtins)
	if n.globals == nil {
		n.globals = starlark.StringDict{}
	}
}

// Set assigns the Starlark form of a Go value to name; a value without one
// is kept as an *Opaque.
func (n *Namespace) Set(name string, v any) {
	sv, err := ToStarlark(v)
	if err != nil {
		sv = &Opaque{V: v, Why: err.Error()}
	}
	n.globals[name] = sv
}

// Get returns the Go form of the variable name, and whether it exists.
func (n *Namespace) Get(name string) (any, bool, error) {
	v, ok := n.globals[name]
	if !ok {
		return nil, false, nil
	}
	g, err := FromStarlark(v)
	if err != nil {
		return nil, true, fmt.Errorf("variable %q: %w", name, err)
	}
	return g, true, nil
}

// Names returns the variables defined by cells and pushes, sorted: not the
// builtins, unless reassigned.
func (n *Namespace) Names() []string {
	var names []string
	for name, v := range n.globals {
		if b, ok := n.builtins[name]; !ok || b != v {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Exec runs code, named file in errors, in the namespace. print receives
// each line the cell prints, as it prints it. If the last statement is an
// expression, its value is assigned to "_" and returned in its Go form
// (nil for None). Variables the cell assigned stay, even if it failed. An
// error is an *Error, or the cause of ctx when it ended the cell.
func (n *Namespace) Exec(ctx context.Context, file, code string, print func(line string)) (any, error) {
	n.keepSource(file, code)
	f, err := dialect.Parse(file, code, 0)
	if err != nil {
		return nil, n.newError("SyntaxError", err)
	}
	hasResult := false
	if k := len(f.Stmts); k > 0 {
		if e, ok := f.Stmts[k-1].(*syntax.ExprStmt); ok {
			f.Stmts[k-1] = &syntax.AssignStmt{Op: syntax.EQ, OpPos: syntax.Start(e.X),
				LHS: &syntax.Ident{NamePos: syntax.Start(e.X), Name: ResultName}, RHS: e.X}
			hasResult = true
		}
	}
	thread := &starlark.Thread{Name: file, Print: func(_ *starlark.Thread, msg string) { print(msg) }}
	thread.SetLocal(contextKey, ctx)
	stop := context.AfterFunc(ctx, func() { thread.Cancel(fmt.Sprint(context.Cause(ctx))) })
	defer stop()
	if err := starlark.ExecREPLChunk(f, thread, n.globals); err != nil {
		if cause := context.Cause(ctx); cause != nil {
			if errors.Is(err, cause) {
				return nil, err // a builtin's error that says more, such as an MPI call interrupted
			}
			return nil, cause
		}
		return nil, n.newError("", err)
	}
	if !hasResult {
		return nil, nil
	}
	out, err := FromStarlark(n.globals[ResultName])
	if err != nil {
		return nil, &Error{Kind: "TypeError", Message: "the cell's value " + err.Error()}
	}
	return out, nil
}

// Callable reports whether the namespace has a function called name that
// cells defined.
func (n *Namespace) Callable(name string) bool {
	if _, builtin := n.builtins[name]; builtin && n.builtins[name] == n.globals[name] {
		return false
	}
	_, ok := n.globals[name].(*starlark.Function)
	return ok
}

// Call calls the function name that a cell defined (see Callable) with
// arguments in Go form, and returns its result in Go form. Errors are as
// for Exec.
func (n *Namespace) Call(ctx context.Context, name string, args []any, print func(line string)) (any, error) {
	fn, ok := n.globals[name].(*starlark.Function)
	if !ok {
		return nil, &Error{Kind: "NameError", Message: fmt.Sprintf("no Starlark function %q is defined", name)}
	}
	sargs := make(starlark.Tuple, len(args))
	for i, a := range args {
		v, err := ToStarlark(a)
		if err != nil {
			return nil, &Error{Kind: "TypeError", Message: fmt.Sprintf("%s: argument %d: %v", name, i+1, err)}
		}
		sargs[i] = v
	}
	thread := &starlark.Thread{Name: name, Print: func(_ *starlark.Thread, msg string) { print(msg) }}
	thread.SetLocal(contextKey, ctx)
	stop := context.AfterFunc(ctx, func() { thread.Cancel(fmt.Sprint(context.Cause(ctx))) })
	defer stop()
	res, err := starlark.Call(thread, fn, sargs, nil)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			if errors.Is(err, cause) {
				return nil, err
			}
			return nil, cause
		}
		return nil, n.newError("", err)
	}
	out, err := FromStarlark(res)
	if err != nil {
		return nil, &Error{Kind: "TypeError", Message: fmt.Sprintf("%s returned %v", name, err)}
	}
	return out, nil
}

// Error is a cell that failed: it did not parse or resolve, or it raised.
type Error struct {
	Kind      string // "SyntaxError", "NameError" (an unknown name), or "StarlarkError"
	Message   string // with the position and the offending line
	Backtrace string // Starlark's, for an error at run time
}

func (e *Error) Error() string { return e.Kind + ": " + e.Message }

// keepSource remembers a cell's code, so that errors in functions it
// defines can show their lines later.
func (n *Namespace) keepSource(file, code string) {
	if _, ok := n.sources[file]; !ok {
		n.order = append(n.order, file)
		if len(n.order) > keptSources {
			delete(n.sources, n.order[0])
			n.order = n.order[1:]
		}
	}
	n.sources[file] = code
}

// newError describes err, from parsing (kind "SyntaxError"), resolving or
// running a cell.
func (n *Namespace) newError(kind string, err error) *Error {
	var (
		syn  syntax.Error
		res  resolve.ErrorList
		eval *starlark.EvalError
	)
	switch {
	case errors.As(err, &syn):
		return &Error{Kind: "SyntaxError", Message: n.at(syn.Pos, syn.Msg)}
	case errors.As(err, &res):
		msgs := make([]string, len(res))
		for i, e := range res {
			msgs[i] = n.at(e.Pos, e.Msg)
		}
		return &Error{Kind: "NameError", Message: strings.Join(msgs, "\n")}
	case errors.As(err, &eval):
		msg := eval.Msg
		// The innermost frame in a cell: a builtin's has no position.
		for i := len(eval.CallStack) - 1; i >= 0; i-- {
			if fr := eval.CallStack[i]; n.sources[fr.Pos.Filename()] != "" {
				msg = n.at(fr.Pos, eval.Msg)
				break
			}
		}
		return &Error{Kind: "StarlarkError", Message: msg, Backtrace: eval.Backtrace()}
	}
	if kind == "" {
		kind = "StarlarkError"
	}
	return &Error{Kind: kind, Message: err.Error()}
}

// at formats msg at pos, with the line of code it points into when the
// namespace has that cell's code.
func (n *Namespace) at(pos syntax.Position, msg string) string {
	s := fmt.Sprintf("%s: %s", pos, msg)
	lines := strings.Split(n.sources[pos.Filename()], "\n")
	if l := int(pos.Line); l >= 1 && l <= len(lines) && strings.TrimSpace(lines[l-1]) != "" {
		s += "\n    " + strings.TrimRight(lines[l-1], " \t\r")
		if c := int(pos.Col); c >= 1 {
			s += "\n    " + strings.Repeat(" ", c-1) + "^"
		}
	}
	return s
}
