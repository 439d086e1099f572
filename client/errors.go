package client

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ipcluster/ipcluster/wire"
)

// ErrClosed is returned for calls on a closed client and for work still
// waiting when it closed.
var ErrClosed = errors.New("client: closed")

// RemoteError is an error raised by a task on an engine.
type RemoteError struct {
	Engine    int    // the engine that ran the task
	TaskID    string // the request's message id
	Type      string // e.g. "TypeError", "NameError", "Panic", or a Go error type name
	Message   string
	Traceback string // the remote stack, if the engine sent one
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("engine %d: %s: %s", e.Engine, e.Type, e.Message)
}

// EngineError reports a task lost with its engine: the engine died or left
// before answering (and no retry was left).
type EngineError struct {
	Engine int
	TaskID string
	Reason string
}

func (e *EngineError) Error() string {
	if e.Engine < 0 {
		return "engine error: " + e.Reason
	}
	return fmt.Sprintf("engine %d: %s", e.Engine, e.Reason)
}

// TimeoutError reports a task that ran longer than its timeout on an
// engine (Engine >= 0), or a wait that ended before the results came
// (Engine is -1; it then wraps the context's error).
type TimeoutError struct {
	Engine  int
	TaskID  string
	Message string
	err     error
}

func (e *TimeoutError) Error() string {
	if e.Engine < 0 {
		return "timed out waiting for " + e.TaskID + ": " + e.Message
	}
	return fmt.Sprintf("engine %d: task %s: %s", e.Engine, e.TaskID, e.Message)
}

func (e *TimeoutError) Unwrap() error { return e.err }

// AbortedError reports a task aborted before it ran.
type AbortedError struct {
	Engine int
	TaskID string
}

func (e *AbortedError) Error() string {
	if e.Engine < 0 {
		return "task " + e.TaskID + " was aborted"
	}
	return fmt.Sprintf("engine %d: task %s was aborted", e.Engine, e.TaskID)
}

// ControllerError is the controller's refusal of a request, such as a
// target that is not registered.
type ControllerError struct {
	Type    string
	Message string
}

func (e *ControllerError) Error() string {
	return "controller refused the request: " + e.Type + ": " + e.Message
}

// CompositeError collects the errors of a request that ran on several
// engines, in target order.
type CompositeError struct {
	Errors []error
	Tasks  int // how many tasks the request had
}

func (e *CompositeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d tasks failed", len(e.Errors), e.Tasks)
	for i, err := range e.Errors {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Errors)-3)
			break
		}
		b.WriteString("; ")
		b.WriteString(err.Error())
	}
	return b.String()
}

// Unwrap returns the errors, for errors.Is and errors.As.
func (e *CompositeError) Unwrap() []error { return e.Errors }

// taskErr turns an engine's or the controller's error description into a
// typed error.
func taskErr(engine int, id string, info wire.ErrorInfo) error {
	switch info.Type {
	case "EngineError", "ShuttingDown":
		return &EngineError{Engine: engine, TaskID: id, Reason: info.Message}
	case "TimeoutError":
		return &TimeoutError{Engine: engine, TaskID: id, Message: info.Message}
	case "TaskAborted":
		return &AbortedError{Engine: engine, TaskID: id}
	}
	return &RemoteError{Engine: engine, TaskID: id, Type: info.Type, Message: info.Message, Traceback: info.Traceback}
}
